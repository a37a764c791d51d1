-- 0014: what a full Outlook round listed of each series, for the round's last page.
--
-- Graph's calendarView/delta lists a series as its instances (occurrences and exceptions) beside,
-- at most, its master. A full round lists every instance in the window, so it already holds what a
-- GET of each series' /instances would answer: which slots are there, so which ones were cancelled.
-- Each page of a full round records here, per series it touched, what it listed (the occurrence
-- slots, and the master and exception items as listed), in the transaction that writes the page; the
-- round's last page reconciles the series from these rows, a few hundred at a time, so its memory
-- does not grow with the calendar. Cleaned with sync_seen.

CREATE TABLE sync_series_listed (
    "runId"    bigint NOT NULL REFERENCES sync_run ("runId") ON DELETE CASCADE,
    "masterId" text NOT NULL,
    listed     jsonb NOT NULL
);
CREATE INDEX sync_series_listed_run_idx ON sync_series_listed ("runId", "masterId");
