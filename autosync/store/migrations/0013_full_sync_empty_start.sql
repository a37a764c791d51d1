-- 0013: whether a full listing began on a calendar with no live provider rows.
--
-- A full run records every id it lists (sync_seen) so that its last page can mark deleted the live
-- rows it did not list. When the calendar held no live provider rows as the listing began (a first
-- link), there is nothing such a query could find but rows the run wrote itself, which it listed:
-- the run then skips that bookkeeping. The choice is made once, when the full listing starts, and
-- kept on the run, so a run resumed after its worker died keeps it.

ALTER TABLE sync_run ADD COLUMN "emptyAtStart" boolean NOT NULL DEFAULT false;
