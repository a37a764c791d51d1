"""The provider-neutral event model: frozen dataclasses shared by normalizers, planning and the store."""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import IntEnum, StrEnum
from typing import Any, Literal

EventStatus = Literal["confirmed", "tentative", "cancelled"]
Moment = datetime | date


class Provider(IntEnum):
    """A calendar's provider, as the app stores it in ``calendar."calendarType"``."""

    GOOGLE = 1
    OUTLOOK = 2

    @property
    def label(self) -> str:
        """The provider's name in logs, metrics and queues: google or outlook."""
        return self.name.lower()


class Step(StrEnum):
    """The steps of a run, as recorded in ``sync_run.step`` and chained by the tasks."""

    TOKEN = "token"  # noqa: S105 (a step name)
    WATCH = "watch"
    FETCH = "fetch"
    IMPORT = "import"
    PUSH = "push"
    DONE = "done"

@dataclass(frozen=True, slots=True, repr=False)
class Attendee:
    """One invitee; status uses Google's vocabulary (needsAction, accepted, tentative, declined)."""

    email: str
    name: str = ""
    status: str = "needsAction"
    optional: bool = False
    resource: bool = False
    organizer: bool = False

    def __repr__(self) -> str:  # the dataclass repr, spelled out: content_hash reads it for every event
        return (f"Attendee(email={self.email!r}, name={self.name!r}, status={self.status!r}, "
                f"optional={self.optional!r}, resource={self.resource!r}, organizer={self.organizer!r})")


@dataclass(frozen=True, slots=True, repr=False)
class Reminder:
    """A reminder: method (popup, email) and minutes before start."""

    method: str
    minutes: int

    def __repr__(self) -> str:  # the dataclass repr, spelled out: content_hash reads it for every event
        return f"Reminder(method={self.method!r}, minutes={self.minutes!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Attachment:
    """A file attached to an event; url is the provider's link, file_id its id where it has one."""

    title: str
    url: str = ""
    mime_type: str = ""
    file_id: str = ""
    size: int | None = None

    def __repr__(self) -> str:  # the dataclass repr, spelled out: content_hash reads it for every event
        return (f"Attachment(title={self.title!r}, url={self.url!r}, mime_type={self.mime_type!r}, "
                f"file_id={self.file_id!r}, size={self.size!r})")


@dataclass(frozen=True, slots=True, repr=False)
class Conference:
    """Online meeting: type (hangoutsMeet, teamsForBusiness, …), join URI, and the provider's full data."""

    type: str
    uri: str
    data_json: str = ""  # the provider's conference object, JSON text, stored verbatim

    def __repr__(self) -> str:  # the dataclass repr, spelled out: content_hash reads it for every event
        return f"Conference(type={self.type!r}, uri={self.uri!r}, data_json={self.data_json!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Organizer:
    """The organizer; the seed stores empty name and email when the calendar owner organizes."""

    name: str
    email: str

    def __repr__(self) -> str:  # the dataclass repr, spelled out: content_hash reads it for every event
        return f"Organizer(name={self.name!r}, email={self.email!r})"


@dataclass(frozen=True, slots=True)
class Event:
    """One provider event, normalized.

    Time rules (the same as the cal_event storage rule):
    - timed events: ``start``/``end`` are tz-aware datetimes in UTC, ``end`` exclusive;
    - all-day events (``all_day``): ``start``/``end`` are dates, ``end`` is the LAST day, inclusive
      (the providers' exclusive end is converted by the normalizers, in both directions);
    - ``start_tz``/``end_tz`` keep the original IANA zone names where the provider has them.
    A cancelled tombstone may carry only ``ext_id`` (and ``recurring_event_id``/``original_start``).
    """

    ext_id: str
    status: EventStatus = "confirmed"
    summary: str = ""
    description: str = ""
    location: str = ""
    all_day: bool = False
    start: Moment | None = None
    end: Moment | None = None
    start_tz: str | None = None
    end_tz: str | None = None
    recurrence: tuple[str, ...] = ()  # RFC 5545 lines: RRULE/EXRULE/RDATE/EXDATE, no DTSTART
    recurring_event_id: str | None = None
    original_start: Moment | None = None
    organizer: Organizer | None = None
    attendees: tuple[Attendee, ...] = ()
    reminders: tuple[Reminder, ...] = ()
    reminders_use_default: bool = False
    conference: Conference | None = None
    html_link: str = ""
    hangout_link: str = ""
    attachments: tuple[Attachment, ...] = ()
    event_type: str = "default"
    excluded_dates: tuple[date, ...] = ()  # Outlook series masters: dates with no occurrence
    remove_child_instances: bool = False  # Outlook: the series' occurrences derive from the master
    remove_cancelled_instances: bool = False  # Outlook: cancelled occurrences are removed, not shown
    updated: datetime | None = None  # provider's last-modified time (UTC)
    etag: str | None = None
    raw: dict[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """True for a deleted event or a cancelled occurrence."""
        return self.status == "cancelled"

    @property
    def is_instance(self) -> bool:
        """True for a modified or cancelled occurrence of a recurring series."""
        return self.recurring_event_id is not None

    def content_hash(self) -> str:
        """A hash of the normalized content, ignoring etag, updated and raw.

        Change detection uses it so a provider that rewrites etags causes no spurious writes. The
        input is the repr of plain values (dataclasses, dates, strings), which is stable and cheap;
        the nested classes spell out the repr dataclasses generate (the same text, without the
        generated method's recursion guard), and tests/normalize/test_model_hash.py pins it: a
        change to that text would rewrite every stored row once.
        """
        return hashlib.blake2b(repr(_hashed_values(self)).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Skipped:
    """A provider item that could not be normalized: its id (if any) and why."""

    ext_id: str
    reason: str


_HASHED = tuple(f.name for f in fields(Event) if f.name not in {"etag", "updated", "raw"})
# The hashed fields as one tuple, read in C (the same tuple a getattr loop builds).
_hashed_values = operator.attrgetter(*_HASHED)


@dataclass(frozen=True)
class AppChange:
    """An app change waiting to be pushed for an event a provider page also names."""

    ext_id: str
    outbox_id: int
    op: str
    changed_at: datetime
    row_hash: str | None  # the row's content hash (None: the app deleted the row)
    app_version: dict[str, Any] | None
