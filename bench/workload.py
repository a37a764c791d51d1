"""Benchmark workloads: many small calendars (steady state) or one large one, seeded into the
emulator through its seed document and linked in the database the way the app links them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from autosync.emulator.client import EmulatorClient
from autosync.emulator.generator import generate_google_events, seed_document
from autosync.emulator.generator_outlook import generate_outlook_events

PROVIDERS = {"google": 1, "outlook": 2}


@dataclass
class Workload:
    """Calendars seeded into the emulator: (account id, email, refresh token, calendar id) each."""

    provider: str
    calendars: list[tuple[str, str, str, str]] = field(default_factory=list)
    events: int = 0

    @property
    def calendar_type(self) -> int:
        """1 Google, 2 Outlook."""
        return PROVIDERS[self.provider]


def many_calendars(provider: str, n: int, *, per_account: int, events: tuple[int, int],
                   seed: int = 7) -> tuple[Workload, dict[str, Any]]:
    """``n`` calendars, ``per_account`` per account, each with ``events`` (min, max) generated events."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    work = Workload(provider)
    accounts: list[dict[str, Any]] = []
    for a in range(0, n, per_account):
        email = f"user{a // per_account}@bench.example"
        account_id, refresh = f"{provider}-acct-{a // per_account}", f"rt-{provider}-{a // per_account}"
        cals = []
        for c in range(a, min(n, a + per_account)):
            cal_id = f"cal{c}.{email}" if provider == "google" else f"AAMkBench{c:06d}"
            count = rng.randint(*events)
            body = (generate_google_events(rng, count, now=now, owner=email) if provider == "google"
                    else generate_outlook_events(rng, count, now=now))
            work.events += len(body)
            cals.append({"calendar_id": cal_id, "name": f"Calendar {c}", "events": body})
            work.calendars.append((account_id, email, refresh, cal_id))
        accounts.append({"provider": provider, "account_id": account_id, "email": email, "refresh_token": refresh,
                         "calendars": cals})
    return work, seed_document(accounts)


def one_large_calendar(provider: str, n: int, seed: int = 11) -> tuple[Workload, dict[str, Any]]:
    """One calendar with about ``n`` generated events (series, exceptions and cancellations included)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    email = "big@bench.example"
    body = (generate_google_events(rng, n, now=now, owner=email) if provider == "google"
            else generate_outlook_events(rng, n, now=now))
    cal_id = email if provider == "google" else "AAMkBenchLarge"
    work = Workload(provider, [(f"{provider}-big", email, f"rt-{provider}-big", cal_id)], len(body))
    account = {"provider": provider, "account_id": f"{provider}-big", "email": email,
               "refresh_token": f"rt-{provider}-big",
               "calendars": [{"calendar_id": cal_id, "name": "Big", "events": body}]}
    return work, seed_document([account])


def link_all(db_url: str, work: Workload) -> list[int]:
    """The user_main and calendar rows the app would create; returns calendar ids."""
    users: dict[str, int] = {}
    ids: list[int] = []
    with psycopg.connect(db_url) as conn:
        emails = sorted({c[1] for c in work.calendars})
        rows = conn.execute('INSERT INTO user_main (email, "firstName") SELECT e, split_part(e, \'@\', 1) '
                            'FROM unnest(%s::text[]) AS e RETURNING "userId", email', (emails,)).fetchall()
        users = {email: uid for uid, email in rows}
        cols: dict[str, list[Any]] = {"user": [], "ext": [], "acct": [], "rt": []}
        for account_id, email, refresh, cal_id in work.calendars:
            cols["user"].append(users[email])
            cols["ext"].append(cal_id)
            cols["acct"].append(account_id)
            cols["rt"].append(refresh)
        created = conn.execute(
            'INSERT INTO calendar ("userId", "calendarType", "extCalendarId", "socialAccountId", "refreshToken", '
            'status) SELECT u, %s, x, a, r, true FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) '
            'AS t(u, x, a, r) RETURNING "calendarId"',
            (work.calendar_type, cols["user"], cols["ext"], cols["acct"], cols["rt"])).fetchall()
        ids = [r[0] for r in created]
    return ids


def change_some(emu: EmulatorClient, work: Workload, share: float, cycle: int, seed: int = 3) -> list[str]:
    """Rename one event in ``share`` of the calendars, as a person would; returns those calendar ids."""
    rng = random.Random(seed + cycle)
    count = max(1, round(len(work.calendars) * share))
    chosen = [c[3] for c in rng.sample(work.calendars, count)]
    for cal_id in chosen:
        if work.provider == "google":
            items = [e for e in emu.google_list(cal_id)
                     if e.get("status") != "cancelled" and not e.get("recurringEventId")]
            emu.google_patch(cal_id, items[0]["id"], {"summary": f"changed in cycle {cycle}"})
        else:
            items = emu.outlook("GET", f"/calendars/{cal_id}/events")["value"]
            single = [e for e in items if e.get("kind") == "singleInstance" and not e.get("deleted")] or items
            emu.outlook("PATCH", f"/events/{single[0]['id']}", json={"subject": f"changed in cycle {cycle}"})
    return chosen
