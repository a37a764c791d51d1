-- 0001, concurrent part: the indexes autosync needs on the app's tables.
--
-- On the app's live database these tables can be large and busy, so each index is built with
-- CREATE INDEX CONCURRENTLY, outside any transaction, without blocking the app's reads or writes
-- (https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY).
-- The runner (autosync/store/migrate.py) skips an index the app already has in the same shape
-- under another name (e.g. the seed's own UNIQUE ("calendarId", "extEventId")), and drops and
-- rebuilds one that an interrupted build left INVALID.

CREATE INDEX CONCURRENTLY IF NOT EXISTS calendar_user_idx ON calendar ("userId", "calendarType");
CREATE INDEX CONCURRENTLY IF NOT EXISTS calendar_account_idx ON calendar ("socialAccountId", "calendarType", "userId");
-- Imports upsert ON CONFLICT ("calendarId", "extEventId"): a unique index on exactly these columns.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS cal_event_calendar_ext_key ON cal_event ("calendarId", "extEventId");
CREATE INDEX CONCURRENTLY IF NOT EXISTS cal_event_recurring_idx ON cal_event ("calendarId", "recurringEventId")
    WHERE "recurringEventId" IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS cal_event_share_event_idx ON cal_event_share ("eventId");
CREATE INDEX CONCURRENTLY IF NOT EXISTS non_reg_user_share_activity_idx ON non_reg_user_share ("activityType", "activityId");
