"""The live demo driver of `autosync run --demo`: seed, keep both sides changing, inject faults, check convergence.

Everything the demo does goes through the same doors as real traffic: the provider side through the
emulator's admin API (people editing in Google Calendar / Outlook), the app side through plain SQL on
the MiPlanIt tables (the app's writes, which the outbox trigger records for sync-back).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from autosync.demo.app_edits import AppEdits, conflict
from autosync.demo.check import PROVIDER
from autosync.demo.check import convergence as check_convergence
from autosync.demo.check import progress as read_progress
from autosync.demo.provider_edits import ProviderEdits
from autosync.demo.seed import connect, demo_users, link_users, linked_calendars, seed_emulator
from autosync.emulator.client import EmulatorClient

if TYPE_CHECKING:
    from autosync.emulator.server import Emulator

OUTLOOK_SCOPE = "offline_access https://graph.microsoft.com/Calendars.ReadWrite"
LIST_ENDPOINT = {1: "google.events.list", 2: "graph.delta"}
REAUTH_AFTER = 2  # cycles between a revoked grant and the user re-authorizing


class Demo:
    """Drives a realistic, deterministic stream of changes and faults against a running autosync."""

    def __init__(self, database_url: str, emulator: Emulator, *, users: int = 20,
                 events_per_calendar: int = 12, seed: int = 7) -> None:
        self.database_url = database_url
        self.emulator = emulator
        self.users = users
        self.events_per_calendar = events_per_calendar
        self.seed = seed
        self.client = EmulatorClient(emulator.admin_url)
        self.revoked: dict[str, tuple[int, int]] = {}  # account id -> (calendarType, cycle revoked)
        self.quiet = False

    def provider_env(self) -> dict[str, str]:
        """Environment for worker/beat processes: the emulator's endpoints and OAuth clients."""
        emu = self.emulator
        google, outlook = emu.clients["google"], emu.clients["outlook"]
        return {
            "AUTOSYNC_GOOGLE_TOKEN_URL": emu.google_token_url,
            "AUTOSYNC_GOOGLE_API_URL": emu.google_api_url,
            "AUTOSYNC_OUTLOOK_TOKEN_URL": emu.outlook_token_url,
            "AUTOSYNC_GRAPH_API_URL": emu.graph_api_url,
            "MIPLANIT_GOOGLE_CLIENT_ID": google[0],
            "MIPLANIT_GOOGLE_CLIENT_SECRET": google[1],
            "MIPLANIT_OUTLOOK_CLIENT_ID": outlook[0],
            "MIPLANIT_OUTLOOK_CLIENT_SECRET": outlook[1],
            "MIPLANIT_OUTLOOK_SCOPE": OUTLOOK_SCOPE,
        }

    def setup(self) -> dict[str, int]:
        """Seed the emulator with the demo users' accounts and events and link them in the database.

        Safe to repeat: existing demo users (``@demo.miplanit.test``) are reused, and re-linked to the
        emulator's accounts when those are new (a fresh emulator), never duplicated.
        """
        users = demo_users(self.users)
        accounts, created, fresh = seed_emulator(self.client, users, self.events_per_calendar, self.seed)
        with connect(self.database_url) as conn:
            counts = link_users(conn, users, accounts, fresh)
            calendars = len(linked_calendars(conn))
        return {"users": len(users), "calendars": calendars, "accounts_created": len(fresh),
                "provider_events_created": created, **counts}

    def step(self, cycle: int) -> list[str]:
        """One round of changes on both sides plus scheduled faults; returns what was done."""
        if self.quiet:
            return []
        rng = random.Random(f"{self.seed}:cycle:{cycle}")
        touched: set[str] = set()
        with connect(self.database_url) as conn:
            calendars = linked_calendars(conn)
            if not calendars:
                return ["no demo calendars are linked: nothing to change"]
            lines = self._reauthorize(conn, cycle)
            provider = ProviderEdits(self.client, rng, cycle, touched)
            for _ in range(rng.randint(2, 3)):
                cal = rng.choice(calendars)
                lines.append(provider.run(PROVIDER[cal["calendarType"]], cal["extCalendarId"], _label(cal)))
            app = AppEdits(conn, rng, cycle, touched)
            for _ in range(rng.randint(2, 3)):
                cal = rng.choice(calendars)
                lines.append(app.run(cal, _label(cal)))
            if cycle % 6 == 4:
                lines += self._conflict(conn, rng.choice(calendars), cycle, rng, touched)
            lines += self._faults(conn, calendars, cycle, rng)
        return lines

    def quiesce(self) -> None:
        """Stop changes and faults; re-authorize every revoked account so everything can converge."""
        self.quiet = True
        self.client.clear_faults()
        with connect(self.database_url) as conn:
            self._reauthorize(conn, None)

    def progress(self) -> dict[str, int]:
        """Counters from the database (runs by outcome, events imported, pushes, errors, requests)."""
        with connect(self.database_url) as conn:
            return read_progress(conn, self.emulator)

    def convergence(self) -> tuple[bool, list[str]]:
        """(True, []) when every linked calendar holds the same live events on both sides."""
        with connect(self.database_url) as conn:
            return check_convergence(conn, self.client, linked_calendars(conn))

    # --- faults ---------------------------------------------------------------------------------

    def _faults(self, conn: Any, calendars: list[dict[str, Any]], cycle: int, rng: random.Random) -> list[str]:
        """The fault schedule: a 429 every 4th cycle, a 410 every 5th, a revoked grant every 7th."""
        healthy = [c for c in calendars if c["socialAccountId"] not in self.revoked]
        lines: list[str] = []
        if healthy and cycle % 4 == 1:
            cal = rng.choice(healthy)
            wait = rng.choice((1, 2))
            self.client.add_fault("status", count=1, provider=PROVIDER[cal["calendarType"]],
                                  account=cal["socialAccountId"], endpoint=LIST_ENDPOINT[cal["calendarType"]],
                                  status=429, headers={"Retry-After": str(wait)})
            lines.append(f"fault {_label(cal)}: next listing answers 429 with Retry-After: {wait}")
        if healthy and cycle % 5 == 2:
            cal = rng.choice(healthy)
            self.client.invalidate_cursors(cal["extCalendarId"])
            lines.append(f"fault {_label(cal)}: sync cursor invalidated (410, full resync expected)")
        if healthy and cycle % 7 == 3:
            cal = rng.choice(healthy)
            self.client.revoke(cal["socialAccountId"])
            self.revoked[cal["socialAccountId"]] = (cal["calendarType"], cycle)
            lines.append(f"fault {_label(cal)}: user revoked access (needs re-auth; re-authorizes in "
                         f"{REAUTH_AFTER} cycles)")
        return lines

    def _reauthorize(self, conn: Any, cycle: int | None) -> list[str]:
        """The user signs in again: a new refresh token, stored on every calendar of the account."""
        lines = []
        for account, (kind, since) in sorted(self.revoked.items()):
            if cycle is not None and cycle < since + REAUTH_AFTER:
                continue
            token = self.client.new_refresh_token(account)
            conn.execute('UPDATE calendar SET "refreshToken" = %s WHERE "socialAccountId" = %s '
                         'AND "calendarType" = %s', (token, account, kind))
            del self.revoked[account]
            lines.append(f"app {account}: user re-authorized, new refresh token stored")
        return lines

    def _conflict(self, conn: Any, cal: dict[str, Any], cycle: int, rng: random.Random,
                  touched: set[str]) -> list[str]:
        def rename(ext_id: str, name: str) -> None:
            if cal["calendarType"] == 1:
                self.client.google_patch(cal["extCalendarId"], ext_id, {"summary": name})
            else:
                self.client.outlook("PATCH", f"/events/{quote(ext_id, safe='')}", {"subject": name})

        done = conflict(conn, cal, cycle, rng, touched, rename)
        return [f"conflict {_label(cal)}: {done}"] if done else []


def _label(cal: dict[str, Any]) -> str:
    return f"{cal['email'].split('@')[0]}/{PROVIDER[cal['calendarType']]}"
