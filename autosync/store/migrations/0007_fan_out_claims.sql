-- 0007: one beat fan-out per interval, and requests that could not be enqueued.
--
-- Every periodic fan-out claims its row here before opening runs, in the same transaction, and is
-- skipped when another one (a second beat, left over by a bad deploy or run for HA) ran less than
-- 0.6 of an interval ago. So two beats do not poll each calendar twice. "lastAt" is also what the
-- beat health check (`autosync health beat`) reads.

CREATE TABLE IF NOT EXISTS fan_out (
    scope             text PRIMARY KEY,             -- the calendar types fanned out, e.g. '1,2'
    "lastAt"          timestamptz NOT NULL,         -- the last fan-out that ran
    "lastRuns"        integer NOT NULL DEFAULT 0,   -- runs it opened
    "interval"        integer NOT NULL,             -- the beat interval it claimed for, in seconds
    duplicates        bigint NOT NULL DEFAULT 0,    -- fan-outs skipped because another had just run
    "lastDuplicateAt" timestamptz                   -- a recent value means two beats are running
);

-- A request whose message never reached the broker is closed with the reason, not left pending.
ALTER TABLE sync_request ADD COLUMN IF NOT EXISTS error text;
