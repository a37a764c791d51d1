-- 0010: Google calendars list only the event types MiPlanIt syncs (eventTypes=default, fromGmail).
--
-- Birthdays and the Workspace status entries (focus time, out of office, working location) were
-- imported before. They are removed here as an imported deletion would remove them (autosync's own
-- write: no outbox entry, so nothing is deleted at Google), and app changes still waiting to be
-- pushed to them are closed. A sync token must be replayed with the parameters of the listing that
-- issued it (Calendar API discovery document, events.list `syncToken`), and every stored Google
-- token was issued without the filter: the cursors are dropped, so each Google calendar lists in
-- full once at its next run. Doing the removal here, not through that full listing, keeps the
-- mass-delete guard from blocking a calendar that holds mostly birthdays.

SET LOCAL autosync.origin = 'sync';

UPDATE event_outbox o SET "doneAt" = now(), outcome = 'refused',
       "lastError" = 'Google ' || e."eventType" || ' events are not synced by MiPlanIt'
FROM cal_event e JOIN calendar c ON c."calendarId" = e."calendarId"
WHERE o."eventId" = e."eventId" AND o."doneAt" IS NULL AND c."calendarType" = 1
  AND e."eventType" IN ('birthday', 'focusTime', 'outOfOffice', 'workingLocation');

UPDATE cal_event e SET status = false, "eventStatus" = 'cancelled', "syncedAt" = now()
FROM calendar c
WHERE c."calendarId" = e."calendarId" AND c."calendarType" = 1 AND e.status
  AND e."eventType" IN ('birthday', 'focusTime', 'outOfOffice', 'workingLocation');

UPDATE calendar SET "deltaLink" = NULL, "cursorUpdatedAt" = now()
WHERE "calendarType" = 1 AND "deltaLink" IS NOT NULL;
