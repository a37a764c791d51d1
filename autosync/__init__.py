"""autosync: two-way sync of MiPlanIt calendars with Google Calendar and Outlook, as Celery tasks.

The Celery app lives in ``autosync.celery`` (found by ``celery -A autosync``); importing the package
itself stays cheap, so the pure modules (model, normalize) load without settings or a broker.
"""
