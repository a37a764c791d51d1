-- 0004: change notifications.
--
-- With AUTOSYNC_WEBHOOK_URL set, autosync watches calendars instead of polling them: a Google
-- events.watch channel per calendar, a Microsoft Graph subscription per mailbox (Graph cannot
-- subscribe to one calendar). The beat then skips a watched calendar until a notification arrives,
-- it has app-side changes to push, its last run failed, or its safety poll is due.

CREATE TABLE push_channel (
    "channelId"       text PRIMARY KEY,          -- Google channel id (ours) or Graph subscription id
    "calendarType"    smallint NOT NULL,         -- 1 Google, 2 Outlook
    "userId"          bigint NOT NULL REFERENCES user_main ("userId") ON DELETE CASCADE,
    "socialAccountId" text,                      -- the account / mailbox
    "calendarId"      bigint REFERENCES calendar ("calendarId") ON DELETE CASCADE,
                                                 -- the watched calendar; NULL: every calendar of the mailbox
    "resourceId"      text,                      -- Google's resourceId, needed by channels.stop
    secret            text NOT NULL,             -- channel token / clientState, checked on every notification
    "expiresAt"       timestamptz NOT NULL,      -- as the provider returned it
    "createdAt"       timestamptz NOT NULL DEFAULT now(),
    "renewedAt"       timestamptz,
    "stoppedAt"       timestamptz,               -- replaced, removed or stopped: its notifications are ignored
    "messages"        bigint NOT NULL DEFAULT 0, -- notifications accepted
    "lastMessageAt"   timestamptz,
    "lastEvent"       text                       -- last notification kind (sync, exists, updated, missed, ...)
);
CREATE INDEX push_channel_calendar ON push_channel ("calendarId") WHERE "stoppedAt" IS NULL;
CREATE INDEX push_channel_account ON push_channel ("calendarType", "userId", "socialAccountId")
    WHERE "stoppedAt" IS NULL;

ALTER TABLE calendar
    ADD COLUMN "watchError"   text,              -- why the last attempt to watch the calendar failed
    ADD COLUMN "watchErrorAt" timestamptz;       -- when; watching is not tried again for a while
