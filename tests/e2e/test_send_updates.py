"""AUTOSYNC_SEND_UPDATES: Google's sendUpdates on every write; Graph has no such switch.

Exchange mails the attendees of a meeting the user organizes whenever it is created, changed or
deleted, and Graph v1.0 offers no parameter to stop it (see the README). What autosync can do there,
sending only the properties that changed, is tested in tests/normalize/test_graph_patch.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.e2e.helpers import link, sync
from tests.e2e.test_pushback_google import app_insert, app_update, at, row


@pytest.fixture()
def send_all(worker: object) -> Iterator[None]:
    """Workers configured with AUTOSYNC_SEND_UPDATES=all."""
    from autosync.services import context as ctxmod
    from autosync.settings import get_settings

    saved = ctxmod._ctx, ctxmod._pid
    ctxmod._ctx, ctxmod._pid = ctxmod.build(replace(get_settings(), send_updates="all")), os.getpid()
    try:
        yield
    finally:
        ctxmod._ctx, ctxmod._pid = saved


def _writes(emu: Any, provider: str) -> list[dict[str, Any]]:
    return [r for r in emu.requests(provider=provider)["requests"] if r["method"] in ("POST", "PATCH", "DELETE")
            and "token" not in r["endpoint"] and "subscriptions" not in r["endpoint"]]


def _insert_edit_delete(db: Any, emu: Any, provider: str) -> list[dict[str, Any]]:
    cal = link(db, emu, provider)
    event_id = app_insert(db, cal, "Board meeting", at(2, 9), at(2, 10))
    sync(cal.user_id)
    app_update(db, event_id, eventName="Board meeting (room 2)")
    sync(cal.user_id)
    app_update(db, event_id, status=False)
    sync(cal.user_id)
    assert row(db, event_id)["extEventId"]
    return _writes(emu, provider)


def test_google_writes_carry_the_configured_send_updates(send_all, db, emu) -> None:
    writes = _insert_edit_delete(db, emu, "google")
    assert [r["method"] for r in writes] == ["POST", "PATCH", "DELETE"]
    assert all(r["query"].get("sendUpdates") == "all" for r in writes)


def test_graph_writes_take_no_notification_parameter(send_all, db, emu) -> None:
    writes = _insert_edit_delete(db, emu, "outlook")
    assert [r["method"] for r in writes] == ["POST", "PATCH", "DELETE"]
    assert all(r["query"] == {} for r in writes)
