"""Seed documents for the emulator and a generator of realistic Google Calendar events.

Seed document format (loadable via `Emulator(seed=...)`, `POST /_admin/seed`, `serve(seed_path=...)`)::

    {"clients": {"google": {"client_id": ..., "client_secret": ...}, "outlook": {...}},
     "accounts": [{"provider": "google" | "outlook", "account_id": ..., "email": ...,
                   "refresh_token": ..., "calendars": [{"calendar_id": ..., "name": ...,
                   "time_zone"?: "UTC", "primary"?: bool, "events": [<native event JSON>]}]}]}

Google events are stored as given (ids, exceptions, cancelled entries kept); Outlook events are created
through the Graph module's admin route. The first calendar of an account is its primary one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "UTC",
    "Australia/Sydney",
    "Europe/London",
)
_ALPHABET = "abcdefghijklmnopqrstuv0123456789"
_TITLES = (
    "Standup",
    "Design review",
    "1:1",
    "Lunch",
    "Planning",
    "Retro",
    "Dentist",
    "Gym",
    "Offsite",
    "Customer call",
    "Board meeting",
    "Focus time",
    "Interview",
    "Demo",
    "Team dinner",
)
_PEOPLE = (
    "bob@example.org",
    "carol@example.net",
    "dave@example.com",
    "erin@example.org",
    "frank@example.net",
)
_STATUSES = ("needsAction", "accepted", "declined", "tentative")
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR")


def seed_document(
    accounts: list[dict[str, Any]],
    google_client: tuple[str, str] = ("google-client-id", "google-secret"),
    outlook_client: tuple[str, str] = ("outlook-client-id", "outlook-secret"),
) -> dict[str, Any]:
    """Wrap account entries in a seed document with the given OAuth clients."""
    return {
        "clients": {
            "google": {"client_id": google_client[0], "client_secret": google_client[1]},
            "outlook": {"client_id": outlook_client[0], "client_secret": outlook_client[1]},
        },
        "accounts": accounts,
    }


def google_account(
    account_id: str, email: str, refresh_token: str, events: list[dict[str, Any]], time_zone: str = "UTC"
) -> dict[str, Any]:
    """A seed entry for a Google account whose primary calendar holds `events`."""
    return {
        "provider": "google",
        "account_id": account_id,
        "email": email,
        "refresh_token": refresh_token,
        "calendars": [{"calendar_id": email, "name": email, "time_zone": time_zone, "events": events}],
    }


def generate_google_events(
    rng: random.Random,
    n: int,
    *,
    now: datetime,
    tz_choices: Sequence[str] = DEFAULT_ZONES,
    owner: str = "alice@example.com",
) -> list[dict[str, Any]]:
    """About `n` realistic Google events (series exceptions and cancelled instances come on top)."""
    zones = [ZoneInfo(z) for z in tz_choices]
    out: list[dict[str, Any]] = []
    for _ in range(n):
        tz = rng.choice(zones)
        roll = rng.random()
        if roll < 0.15:
            out.append(_all_day(rng, now, owner))
        elif roll < 0.25:
            out.extend(_series(rng, now, tz, owner))
        else:
            out.append(_timed(rng, now, tz, owner))
    return out


def _new_id(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(26))


def _base(rng: random.Random, owner: str, event_id: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id,
        "status": "confirmed",
        "summary": rng.choice(_TITLES),
        "iCalUID": f"{event_id}@google.com",
        "sequence": 0,
        "eventType": "default",
        "creator": {"email": owner, "self": True},
        "organizer": {"email": owner, "self": True},
        "reminders": {"useDefault": True},
    }
    if rng.random() < 0.4:
        event["description"] = "<b>Agenda</b><br>" + rng.choice(_TITLES)
    if rng.random() < 0.3:
        event["location"] = f"Room {rng.randint(1, 9)}.{rng.randint(1, 20)}"
    if rng.random() < 0.35:
        guests = rng.sample(_PEOPLE, rng.randint(1, 3))
        event["attendees"] = [{"email": owner, "organizer": True, "self": True, "responseStatus": "accepted"}] + [
            {
                "email": g,
                "responseStatus": rng.choice(_STATUSES),
                **({"optional": True} if rng.random() < 0.2 else {}),
            }
            for g in guests
        ]
    if rng.random() < 0.2:
        event["reminders"] = {
            "useDefault": False,
            "overrides": [{"method": "popup", "minutes": rng.choice((5, 10, 30))}],
        }
    if rng.random() < 0.15:
        code = "-".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(k)) for k in (3, 4, 3))
        event["conferenceData"] = {
            "entryPoints": [
                {
                    "entryPointType": "video",
                    "uri": f"https://meet.google.com/{code}",
                    "label": f"meet.google.com/{code}",
                }
            ],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": code,
        }
        event["hangoutLink"] = f"https://meet.google.com/{code}"
    if rng.random() < 0.05:
        file_id = _new_id(rng)
        event["attachments"] = [
            {
                "fileUrl": f"https://drive.google.com/open?id={file_id}",
                "title": "Notes.pdf",
                "mimeType": "application/pdf",
                "fileId": file_id,
            }
        ]
    return event


def _start(rng: random.Random, now: datetime, tz: ZoneInfo) -> datetime:
    day = now.date() + timedelta(days=rng.randint(-60, 180))
    return datetime(day.year, day.month, day.day, rng.randint(7, 19), rng.choice((0, 15, 30, 45)), tzinfo=tz)


def _slot(value: datetime, tz: ZoneInfo) -> dict[str, str]:
    return {"dateTime": value.isoformat(), "timeZone": tz.key}


def _timed(rng: random.Random, now: datetime, tz: ZoneInfo, owner: str) -> dict[str, Any]:
    event = _base(rng, owner, _new_id(rng))
    start = _start(rng, now, tz)
    event["start"], event["end"] = (
        _slot(start, tz),
        _slot(start + timedelta(minutes=rng.choice((15, 30, 60, 90))), tz),
    )
    return event


def _all_day(rng: random.Random, now: datetime, owner: str) -> dict[str, Any]:
    event = _base(rng, owner, _new_id(rng))
    first = now.date() + timedelta(days=rng.randint(-60, 180))
    days = 1 if rng.random() < 0.7 else rng.randint(2, 5)
    event["start"], event["end"] = (
        {"date": first.isoformat()},
        {"date": (first + timedelta(days=days)).isoformat()},
    )
    event["transparency"] = "transparent"
    return event


def _series(rng: random.Random, now: datetime, tz: ZoneInfo, owner: str) -> list[dict[str, Any]]:
    """A recurring master plus a moved exception and a cancelled instance of it."""
    master = _base(rng, owner, _new_id(rng))
    start = _start(rng, now, tz)
    freq = rng.choice(("DAILY", "WEEKLY", "WEEKLY", "MONTHLY"))
    step = {"DAILY": timedelta(days=1), "WEEKLY": timedelta(weeks=1), "MONTHLY": timedelta(days=31)}[freq]
    rule = f"RRULE:FREQ={freq}"
    if freq == "WEEKLY":
        rule += ";BYDAY=" + _WEEKDAYS[start.weekday()] if start.weekday() < 5 else ""
    ending = rng.random()
    if ending < 0.3:
        rule += f";COUNT={rng.randint(5, 20)}"
    elif ending < 0.6:
        until = (start + step * rng.randint(5, 30)).astimezone(UTC)
        rule += ";UNTIL=" + until.strftime("%Y%m%dT%H%M%SZ")
    master["start"] = _slot(start, tz)
    master["end"] = _slot(start + timedelta(minutes=rng.choice((15, 30, 60))), tz)
    master["recurrence"] = [rule]
    if rng.random() < 0.3:
        skipped = start + step * 2
        master["recurrence"].append(f"EXDATE;TZID={tz.key}:{skipped.strftime('%Y%m%dT%H%M%S')}")
    out = [master]
    if freq != "MONTHLY" and rng.random() < 0.5:
        out.append(_exception(master, start + step, tz, moved=True))
    if freq != "MONTHLY" and rng.random() < 0.4:
        out.append(_exception(master, start + step * 3, tz, moved=False))
    return out


def _exception(master: dict[str, Any], original: datetime, tz: ZoneInfo, moved: bool) -> dict[str, Any]:
    original = original.replace(tzinfo=tz)  # wall-clock step: same local time across DST
    suffix = original.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    event_id = f"{master['id']}_{suffix}"
    if not moved:
        return {
            "id": event_id,
            "status": "cancelled",
            "recurringEventId": master["id"],
            "originalStartTime": _slot(original, tz),
            "start": _slot(original, tz),
            "end": _slot(original, tz),
        }
    duration = datetime.fromisoformat(master["end"]["dateTime"]) - datetime.fromisoformat(master["start"]["dateTime"])
    new_start = original + timedelta(hours=2)
    body = {k: v for k, v in master.items() if k != "recurrence"}
    body.update(
        {
            "id": event_id,
            "summary": master["summary"] + " (moved)",
            "recurringEventId": master["id"],
            "originalStartTime": _slot(original, tz),
            "start": _slot(new_start, tz),
            "end": _slot(new_start + duration, tz),
            "sequence": 1,
        }
    )
    return body
