-- 0006: short, named leases for work that spans a provider call.
--
-- A token refresh (one per account at a time, so a rotated Microsoft refresh token is never sent
-- twice) and a change-notification channel update (one per mailbox or calendar at a time) used to be
-- serialized by an advisory lock held in an open transaction across the provider call: the worker
-- kept a pooled PostgreSQL connection idle for the whole round trip. A lease is claimed in its own
-- short transaction instead, held while the provider answers, and released after the result is
-- saved; one whose holder died expires on its own.

CREATE TABLE IF NOT EXISTS autosync_lease (
    key         text PRIMARY KEY,        -- what is leased, e.g. token:2:282:AAMkAD...
    holder      text NOT NULL,           -- random per claim: only the holder releases it
    "expiresAt" timestamptz NOT NULL     -- claimable again after this, even if never released
);
