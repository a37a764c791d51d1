-- 0011: the mass-delete guard decides over a whole run, and a run can be a dry run.
--
-- The deletions a run's pages find are recorded here with each page's commit and applied only on
-- the run's last page, after the guard has decided on the run's total: a multi-page run either
-- applies all of its deletions or none. A dry run (`autosync sync --dry-run`) goes through every
-- step, counts what it would import, delete and push, and rolls its writes back.

CREATE TABLE IF NOT EXISTS sync_pending_delete (
    "runId"      bigint NOT NULL REFERENCES sync_run ("runId") ON DELETE CASCADE,
    "extEventId" text NOT NULL,
    PRIMARY KEY ("runId", "extEventId")
);

ALTER TABLE sync_run ADD COLUMN IF NOT EXISTS "dryRun" boolean NOT NULL DEFAULT false;
