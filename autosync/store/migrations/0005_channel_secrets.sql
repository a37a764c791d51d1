-- 0005: change-notification channels as the receiver needs them on the open internet.
--
-- * The secret a provider echoes in every notification is kept as its SHA-256, not in plaintext:
--   a database dump no longer lets anyone forge notifications. The secret is 256 random bits, so a
--   fast hash is as good as a slow one here. Existing rows are hashed in place.
-- * Google numbers the messages of a channel; the highest one taken is kept, so a replayed message
--   (same number) queues nothing.
-- * Every insert, stop or delete of a channel is announced with NOTIFY (on commit), so the receiver
--   keeps its own list of live channels and refuses forged notifications without a query each.
-- Plain, idempotent SQL: safe to run twice.

ALTER TABLE push_channel ADD COLUMN IF NOT EXISTS "secretHash" bytea;
ALTER TABLE push_channel ADD COLUMN IF NOT EXISTS "lastMessageNumber" bigint;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'push_channel' AND column_name = 'secret') THEN
        UPDATE push_channel SET "secretHash" = sha256(convert_to(secret, 'UTF8')) WHERE "secretHash" IS NULL;
        ALTER TABLE push_channel DROP COLUMN secret;
    END IF;
END $$;

ALTER TABLE push_channel ALTER COLUMN "secretHash" SET NOT NULL;

CREATE OR REPLACE FUNCTION autosync_push_channel_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('autosync_push_channel', OLD."channelId");
    ELSE
        PERFORM pg_notify('autosync_push_channel', NEW."channelId");
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS push_channel_changed ON push_channel;
CREATE TRIGGER push_channel_changed AFTER INSERT OR DELETE OR UPDATE OF "stoppedAt" ON push_channel
    FOR EACH ROW EXECUTE FUNCTION autosync_push_channel_changed();
