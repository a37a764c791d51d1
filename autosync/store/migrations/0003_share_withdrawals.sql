-- 0003: share withdrawals reach the provider.
--
-- Attendees pushed from the share tables come back into cal_event.attendees with the next import,
-- so a withdrawn, declined or deleted share must be remembered explicitly, or the push would send
-- the attendee again from the row. The trigger records such e-mails on the event's pending outbox
-- entry; sharing the same address again takes it off the list.

ALTER TABLE event_outbox
    ADD COLUMN "removedAttendees" text[] NOT NULL DEFAULT '{}';  -- lower-case e-mails to drop on push

CREATE OR REPLACE FUNCTION autosync_record_share_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
    gone text;
    back text;
    old_active boolean := false;
    new_active boolean := false;
    old_email text;
    new_email text;
BEGIN
    IF coalesce(current_setting('autosync.origin', true), '') = 'sync' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'cal_event_share' THEN
        IF TG_OP <> 'INSERT' THEN
            old_active := OLD.status AND OLD."sharedStatus" <> 2;
            SELECT lower(u.email) INTO old_email FROM user_main u WHERE u."userId" = OLD."sharedUser";
        END IF;
        IF TG_OP <> 'DELETE' THEN
            new_active := NEW.status AND NEW."sharedStatus" <> 2;
            SELECT lower(u.email) INTO new_email FROM user_main u WHERE u."userId" = NEW."sharedUser";
        END IF;
        event_id := CASE WHEN TG_OP = 'DELETE' THEN OLD."eventId" ELSE NEW."eventId" END;
    ELSE
        IF TG_OP <> 'INSERT' THEN
            old_active := OLD."activityType" = 2;
            old_email := lower(OLD.email);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            new_active := NEW."activityType" = 2;
            new_email := lower(NEW.email);
        END IF;
        IF NOT (old_active OR new_active) THEN
            RETURN NULL;   -- not an event share
        END IF;
        event_id := CASE WHEN new_active THEN NEW."activityId" ELSE OLD."activityId" END;
    END IF;
    IF old_active AND (NOT new_active OR old_email IS DISTINCT FROM new_email) THEN
        gone := old_email;
    END IF;
    IF new_active THEN
        back := new_email;
    END IF;
    INSERT INTO event_outbox ("eventId", "calendarId", op, "extEventId", "removedAttendees")
    SELECT e."eventId", e."calendarId",
           CASE WHEN e."extEventId" IS NULL THEN 'insert' ELSE 'update' END, e."extEventId",
           CASE WHEN gone IS NULL THEN '{}'::text[] ELSE ARRAY[gone] END
      FROM cal_event e JOIN calendar c ON c."calendarId" = e."calendarId"
     WHERE e."eventId" = event_id AND e.status AND c."calendarType" IN (1, 2)
    ON CONFLICT ("eventId") WHERE "doneAt" IS NULL DO UPDATE
        SET "changedAt" = now(), "nextAttemptAt" = now(),
            "removedAttendees" = array_remove(
                ARRAY(SELECT DISTINCT x FROM unnest(event_outbox."removedAttendees" || EXCLUDED."removedAttendees") AS x),
                back);
    RETURN NULL;
END $$;
