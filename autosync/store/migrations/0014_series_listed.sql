-- 0014: what a full Outlook round listed of each series, for the round's last page.
--
-- Graph's calendarView/delta lists a series as its instances (occurrences and exceptions) beside,
-- at most, its master. A full round lists every instance in the window, so it already holds what a
-- GET of each series' /instances would answer: which slots are there, so which ones were cancelled.
-- Each page of a full round records here what it listed of the series it touched (the occurrence
-- slots, and the master and exception items as listed), in the transaction that writes the page; the
-- round's last page reconciles every series from these rows. Cleaned with sync_seen.

CREATE TABLE sync_series_listed (
    "runId"  bigint NOT NULL REFERENCES sync_run ("runId") ON DELETE CASCADE,
    listed   jsonb NOT NULL
);
CREATE INDEX sync_series_listed_run_idx ON sync_series_listed ("runId");
