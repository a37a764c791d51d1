"""Stored records of the Graph emulator: calendars, events, Outlook-looking ids and change keys."""

from __future__ import annotations

import base64
import secrets
import struct
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

_ID_PREFIX = "AAMkAG"
_SINGLE_TAG = 0x46
_OCCURRENCE_TAG = 0x47
_ICAL_PREFIX = "040000008200E00074C5B7101A82E008"


@dataclass
class Calendar:
    """One calendar of a mailbox."""

    id: str
    account_id: str
    email: str
    display_name: str
    name: str
    primary: bool = False
    # Mailboxes this calendar is shared with (delegates): they reach it as /me/calendars/{id}, but its
    # items are not in their own mailbox, so /me/events/{id} does not find them.
    shared_with: list[str] = field(default_factory=list)

    def open_to(self, account_id: str) -> bool:
        """Whether the mailbox owns this calendar or has it shared with it."""
        return account_id == self.account_id or account_id in self.shared_with


@dataclass
class StoredEvent:
    """A stored item: single instance, series master or exception (occurrences are derived).

    Timed events keep aware UTC ``start``/``end``; all-day events keep naive midnights (floating).
    """

    id: str
    key: str  # hex of the 12 random bytes the ids of the item and of its occurrences derive from
    calendar_id: str
    kind: str  # singleInstance | seriesMaster | exception
    props: dict[str, Any]
    start: datetime
    end: datetime
    all_day: bool
    start_zone: str  # zone key as written (IANA key; rendered as a Windows name)
    end_zone: str
    ical_uid: str
    created: datetime
    modified: datetime
    change_key: str
    seq: int
    recurrence: dict[str, Any] | None = None
    series_master_id: str | None = None
    original_start: datetime | None = None  # exceptions: the slot it replaces (aware UTC)
    cancelled: list[int] = field(default_factory=list)  # masters: epochs of cancelled slots
    exception_ids: list[str] = field(default_factory=list)  # masters: ids of their exceptions
    attachments: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for dump()."""
        data = asdict(self)
        for name in ("start", "end", "created", "modified", "original_start"):
            value = getattr(self, name)
            data[name] = None if value is None else value.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredEvent:
        """Inverse of to_dict()."""
        values = dict(data)
        for name in ("start", "end", "created", "modified", "original_start"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def new_key() -> str:
    """Fresh random key material for an item's ids."""
    return secrets.token_bytes(12).hex()


def event_id(key: str) -> str:
    """The id of a stored item (url-safe base64 ending in ``=``, like Outlook ids)."""
    return _ID_PREFIX + _b64(bytes([_SINGLE_TAG]) + bytes.fromhex(key) + b"\x00")


def occurrence_id(key: str, original_epoch: int) -> str:
    """The stable id of the occurrence of series ``key`` whose original slot starts at ``original_epoch``."""
    return _ID_PREFIX + _b64(
        bytes([_OCCURRENCE_TAG]) + bytes.fromhex(key) + struct.pack(">q", original_epoch) + b"\x00\x00"
    )


def parse_occurrence_id(value: str) -> tuple[str, int] | None:
    """(series key, original epoch) for an occurrence id, None for anything else."""
    if not value.startswith(_ID_PREFIX):
        return None
    try:
        raw = base64.urlsafe_b64decode(value[len(_ID_PREFIX) :])
    except (ValueError, TypeError):
        return None
    if len(raw) != 23 or raw[0] != _OCCURRENCE_TAG:
        return None
    return raw[1:13].hex(), struct.unpack(">q", raw[13:21])[0]


def new_change_key() -> str:
    """A change key (standard base64 with ``+``, ``/``, ``=`` as Outlook's are)."""
    return base64.b64encode(secrets.token_bytes(16)).decode()


def new_calendar_id() -> str:
    """A calendar id in Outlook's style."""
    return "AAMkAGCal" + _b64(secrets.token_bytes(16) + b"\x00\x00")


def ical_uid(key: str, created: datetime) -> str:
    """The series-level iCalUId of an item."""
    filetime = int((created - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
    return f"{_ICAL_PREFIX}00000000{filetime:016X}000000000000000010000000{key.upper()}"


def occurrence_ical_uid(series_uid: str, original: datetime) -> str:
    """Per-occurrence iCalUId (v1.0 differs per occurrence, provider rule 23): the slot date is embedded."""
    stamp = f"{original.year:04X}{original.month:02X}{original.day:02X}"
    return series_uid[:32] + stamp + series_uid[40:]
