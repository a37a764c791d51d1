"""The content hash is stored on every imported row: its text must never change by accident.

A changed hash makes every stored row look changed once (a full rewrite of every calendar on the
next round), so the values below were computed by the release that introduced them and are pinned.
The nested classes write their repr by hand (faster than the generated one); it must stay the text
dataclasses would generate.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from autosync.model import Attachment, Attendee, Conference, Event, Organizer, Reminder


def _generated_repr(obj: object) -> str:
    """The repr ``@dataclass`` generates: Class(field=value!r, ...)."""
    inner = ", ".join(f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj) if f.repr)  # type: ignore[arg-type]
    return f"{type(obj).__qualname__}({inner})"


@pytest.mark.parametrize("obj", [
    Attendee("b@example.com", "Bob \u2019s", "accepted", optional=True, resource=False, organizer=True),
    Attendee("x@example.com"),
    Reminder("popup", 10),
    Attachment("f.pdf", "https://x/f", "application/pdf", "id1", 12),
    Attachment("g"),
    Conference("hangoutsMeet", "https://meet/x", '{"a": "\\u00e9"}'),
    Organizer("", ""),
    Organizer("Ann 'A'", "ann@example.com"),
])
def test_hand_written_reprs_are_the_generated_ones(obj: object) -> None:
    assert repr(obj) == _generated_repr(obj)


def test_every_field_of_the_nested_classes_is_in_their_repr() -> None:
    for cls in (Attendee, Reminder, Attachment, Conference, Organizer):
        text = cls.__repr__.__code__.co_consts  # the f-string's literal parts
        for f in dataclasses.fields(cls):
            assert any(isinstance(c, str) and f"{f.name}=" in c for c in text), (cls.__name__, f.name)


def test_content_hashes_are_the_pinned_ones() -> None:
    rich = Event(
        ext_id="abc", summary="Stand-up \u2019s", description='d\n"q"', location="Room 1",
        start=datetime(2026, 1, 2, 9, 30, tzinfo=UTC), end=datetime(2026, 1, 2, 10, tzinfo=UTC),
        start_tz="Europe/Paris", end_tz="Europe/Paris", recurrence=("RRULE:FREQ=WEEKLY",),
        organizer=Organizer("Ann", "ann@example.com"),
        attendees=(Attendee("b@example.com", "Bob", "accepted", optional=True),
                   Attendee("room@example.com", resource=True)),
        reminders=(Reminder("popup", 10),), conference=Conference("hangoutsMeet", "https://meet/x", '{"a":1}'),
        attachments=(Attachment("f.pdf", "https://x/f", "application/pdf", "id1", 12),),
        excluded_dates=(date(2026, 1, 9),), etag="e1", updated=datetime(2026, 1, 1, tzinfo=UTC))
    all_day = Event(ext_id="allday", all_day=True, start=date(2026, 3, 1), end=date(2026, 3, 1), status="tentative")
    assert rich.content_hash() == "482168bb329f5afabfc2d9fe10cbced3"
    assert all_day.content_hash() == "0bd9c3646bfc552b9b2005659bacce4f"
    # etag, updated and raw are not content
    assert dataclasses.replace(rich, etag="e2", updated=None, raw={"x": 1}).content_hash() == rich.content_hash()
    assert dataclasses.replace(rich, attendees=rich.attendees[:1]).content_hash() != rich.content_hash()
