-- 0009 (concurrent): indexes for the scrape-time metrics of `autosync metrics`.
--
-- push_channel keeps every channel ever made (a Google channel is replaced about every two days and
-- the old row stays, stopped), so counting the live ones by provider and expiry must not scan the
-- history: a partial index holds only the channels not stopped. Built CONCURRENTLY, so a large
-- push_channel is not locked against the receiver and the workers while it builds.

CREATE INDEX CONCURRENTLY IF NOT EXISTS push_channel_live_expiry ON push_channel ("calendarType", "expiresAt")
    WHERE "stoppedAt" IS NULL;
