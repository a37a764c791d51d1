-- 0008: series a Graph change notification named.
--
-- Deleting one occurrence of an Outlook series may change nothing any calendarView/delta round shows
-- (microsoft-graph-docs PR 4501), while the subscription still reports the series master as updated
-- (microsoft-graph-docs issue 5520). The receiver keeps such a master here, per calendar that stores
-- it, until that calendar's next round has checked the series' instances (or seen it in the delta).

CREATE TABLE series_hint (
    "calendarId" bigint NOT NULL REFERENCES calendar ("calendarId") ON DELETE CASCADE,
    "extEventId" text NOT NULL,                  -- the series master's id
    "createdAt"  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("calendarId", "extEventId")
);
