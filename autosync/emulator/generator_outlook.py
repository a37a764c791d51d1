"""Realistic Outlook seed events: Graph event JSON in the write format the emulator's POST accepts.

Series carry two emulator-only keys understood by the Graph admin POST, ``GraphState.import_events`` and
``GraphState.load({"seed": {calendar_id: [...]}})`` (see graph_admin):
``"@emulator.cancelledDates"`` (local dates of cancelled occurrences) and ``"@emulator.exceptions"``
(``[{"originalDate": "YYYY-MM-DD", "patch": {...}}]``).
"""

from __future__ import annotations

import base64
import random
import uuid
from datetime import date, datetime, timedelta
from typing import Any

ZONES = [
    "W. Europe Standard Time",
    "Pacific Standard Time",
    "Eastern Standard Time",
    "GMT Standard Time",
    "India Standard Time",
    "Tokyo Standard Time",
    "AUS Eastern Standard Time",
    "UTC",
    "Romance Standard Time",
    "Central Standard Time",
]
DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
SUBJECTS = [
    "Standup",
    "Design review",
    "1:1",
    "Planning",
    "Lunch",
    "Customer call",
    "Retro",
    "Offsite",
    "Dentist",
    "Interview",
    "Budget sync",
    "All hands",
    "Focus time",
    "Training",
    "Demo",
]
PEOPLE = [
    ("Adele Vance", "AdeleV@contoso.com"),
    ("Alex Wilber", "AlexW@contoso.com"),
    ("Megan Bowen", "MeganB@contoso.com"),
    ("Lidia Holloway", "LidiaH@contoso.com"),
    ("Diego Siciliani", "DiegoS@contoso.com"),
    ("Johanna Lorenz", "JohannaL@contoso.com"),
]
PLACES = ["Room 4.2", "Harry's Bar", "Conf Room 3", "Microsoft Teams Meeting", "Home Office", ""]
RESPONSES = ["none", "accepted", "tentativelyAccepted", "declined"]


def _dtz(value: datetime, zone: str) -> dict[str, str]:
    return {"dateTime": value.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone}


def _attendees(rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for name, address in rng.sample(PEOPLE, rng.choice([0, 0, 1, 2, 3])):
        response = rng.choice(RESPONSES)
        when = "0001-01-01T00:00:00Z" if response == "none" else "2024-05-01T12:00:00Z"
        out.append(
            {
                "type": rng.choice(["required", "required", "optional"]),
                "status": {"response": response, "time": when},
                "emailAddress": {"name": name, "address": address},
            }
        )
    return out


def _recurrence(rng: random.Random, start: date, zone: str) -> dict[str, Any]:
    kind = rng.choice(
        [
            "daily",
            "weekly",
            "weekly",
            "weekly",
            "absoluteMonthly",
            "relativeMonthly",
            "absoluteYearly",
            "relativeYearly",
        ]
    )
    pattern: dict[str, Any] = {"type": kind, "interval": rng.choice([1, 1, 1, 2])}
    weekday = DAYS[(start.weekday() + 1) % 7]
    if kind == "weekly":
        pattern["daysOfWeek"] = sorted(
            {weekday, *rng.sample(DAYS[1:6], rng.choice([0, 1, 2]))}, key=DAYS.index
        )
        pattern["firstDayOfWeek"] = "sunday"
    elif kind.startswith("relative"):
        pattern["daysOfWeek"], pattern["index"] = [weekday], rng.choice(["first", "second", "third", "last"])
    elif kind.startswith("absolute"):
        pattern["dayOfMonth"] = start.day
    if kind.endswith("Yearly"):
        pattern["month"] = start.month
    # relative patterns may first match more than a few months out, so they get no short endDate range
    rng_kind = rng.choice(
        ["noEnd", "numbered"] if kind.startswith("relative") else ["endDate", "noEnd", "numbered"]
    )
    rrange: dict[str, Any] = {"type": rng_kind, "startDate": start.isoformat(), "recurrenceTimeZone": zone}
    if rng_kind == "endDate":
        rrange["endDate"] = (start + timedelta(days=rng.randint(30, 240))).isoformat()
    elif rng_kind == "numbered":
        rrange["numberOfOccurrences"] = rng.randint(3, 30)
    return {"pattern": pattern, "range": rrange}


def _series_extras(rng: random.Random, event: dict[str, Any], start: date) -> None:
    """Cancel some occurrences and move/retitle others (dates only used when they are occurrences)."""
    if event["recurrence"]["pattern"]["type"] not in ("daily", "weekly") or rng.random() > 0.4:
        return
    step = 7 if event["recurrence"]["pattern"]["type"] == "weekly" else 1
    slots = [start + timedelta(days=step * k) for k in range(1, 6)]
    event["@emulator.cancelledDates"] = [d.isoformat() for d in slots[:1]]
    event["@emulator.exceptions"] = [
        {"originalDate": slots[2].isoformat(), "patch": {"subject": event["subject"] + " (moved)"}}
    ]


def _one(rng: random.Random, index: int, now: datetime) -> dict[str, Any]:
    zone = rng.choice(ZONES)
    day = now.date() + timedelta(days=rng.randint(-60, 180))
    roll = rng.random()
    subject = f"{rng.choice(SUBJECTS)} #{index}"
    if roll < 0.15:  # all-day: midnight to midnight in one zone
        start = datetime(day.year, day.month, day.day)
        event = {
            "subject": subject,
            "isAllDay": True,
            "showAs": "free",
            "start": _dtz(start, zone),
            "end": _dtz(start + timedelta(days=rng.choice([1, 1, 2, 3])), zone),
        }
    else:
        start = datetime(day.year, day.month, day.day, rng.randint(7, 18), rng.choice([0, 15, 30, 45]))
        end = start + timedelta(minutes=rng.choice([15, 30, 30, 60, 60, 90, 120]))
        event = {"subject": subject, "start": _dtz(start, zone), "end": _dtz(end, zone)}
    event["body"] = {"contentType": "html", "content": f"<html><body><p>{subject} notes</p></body></html>"}
    event["location"] = {"displayName": rng.choice(PLACES)}
    event["attendees"] = _attendees(rng)
    event["reminderMinutesBeforeStart"] = rng.choice([0, 5, 10, 15, 15, 30, 1440])
    event["isReminderOn"] = rng.random() < 0.85
    event["categories"] = rng.sample(
        ["Blue category", "Red category", "Green category"], rng.choice([0, 0, 1])
    )
    event["importance"] = rng.choice(["normal"] * 8 + ["high", "low"])
    event["sensitivity"] = rng.choice(["normal"] * 9 + ["private"])
    event["transactionId"] = str(uuid.UUID(int=rng.getrandbits(128)))
    if event["attendees"] and rng.random() < 0.5:
        event["isOnlineMeeting"], event["onlineMeetingProvider"] = True, "teamsForBusiness"
    if rng.random() < 0.03:
        raw = bytes(rng.getrandbits(8) for _ in range(48))
        event["attachments"] = [
            {
                "name": f"agenda-{index}.txt",
                "contentType": "text/plain",
                "contentBytes": base64.b64encode(raw).decode(),
            }
        ]
    if 0.15 <= roll < 0.25:
        event["recurrence"] = _recurrence(rng, day, zone)
        _series_extras(rng, event, day)
    return event


def generate_outlook_events(rng: random.Random, n: int, *, now: datetime) -> list[dict[str, Any]]:
    """``n`` realistic Graph event bodies (~10% series, ~15% all-day) spread -60..+180 days around ``now``."""
    return [_one(rng, index, now) for index in range(n)]
