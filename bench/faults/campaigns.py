"""The campaigns R1-R6 (R7 is the secret search run at the end of each of them, see check.secret_hits).

Each campaign starts a fresh System, lets the first syncs finish, injects its faults while both sides
keep changing, stops the changes, waits until everything settled and counts with the shared checker.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bench.faults.check import check, duplicate_groups, log_count, secret_hits
from bench.faults.system import System, say


@dataclass(frozen=True)
class Sizes:
    """How hard a run pushes: the full run, or --quick."""

    users: int
    kills: int
    restarts: int
    long_outage: float
    throttle_s: float
    hostile_rounds: int
    revokes: int
    roundtrip_events: int
    interval: int  # seconds between beat fan-outs


FULL = Sizes(users=10, kills=60, restarts=5, long_outage=60, throttle_s=25, hostile_rounds=4, revokes=4,
             roundtrip_events=3, interval=3)
QUICK = Sizes(users=3, kills=10, restarts=1, long_outage=8, throttle_s=8, hostile_rounds=2, revokes=2,
              roundtrip_events=1, interval=2)


class Campaign:
    """A fresh system for one campaign; ``finish`` settles, checks, searches secrets and closes."""

    def __init__(self, name: str, sizes: Sizes, **system: Any) -> None:
        self.name = name
        self.started = time.monotonic()
        say(f"{name}: starting the system")
        self.system = System(users=sizes.users, interval=sizes.interval, **system)
        self.system.start()
        if not self.system.settle(240):
            say(f"{name}: first syncs did not settle in time")
        self.baseline = duplicate_groups(self.system)
        self.cycle = 0
        self.next_change = time.monotonic()

    def calendars(self) -> list[dict[str, Any]]:
        """The linked calendars as the app's tables hold them now."""
        from autosync.demo.seed import linked_calendars

        with self.system.connect() as conn:
            return linked_calendars(conn)

    def changes(self) -> None:
        """One round of changes on both sides every sync interval."""
        if time.monotonic() >= self.next_change:
            self.cycle += 1
            with contextlib.suppress(Exception):  # our own services may be down (R2)
                self.system.mutate(self.cycle)
            self.next_change = time.monotonic() + self.system.interval

    def run_for(self, seconds: float) -> None:
        """Keep both sides changing for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.changes()
            time.sleep(0.1)

    def finish(self, counters: dict[str, Any], settle: float = 300) -> dict[str, Any]:
        """Stop changing, settle, check; the campaign's figures."""
        t0 = time.monotonic()
        reauthorized, settled = 0, False
        while not settled and time.monotonic() - t0 < settle:
            # a refresh whose answer was lost may put a calendar in needs-reauth a while later
            reauthorized += self.reauthorize()
            settled = self.system.settle(20)
        out = {**check(self.system, self.baseline), **counters}
        out["calendars_put_in_needs_reauth"] = reauthorized
        out["settled"] = settled
        out["settle_s"] = round(time.monotonic() - t0, 1)
        out["worker_exits_not_caused_by_the_bench"] = self.system.worker_deaths
        out["pool_processes_lost"] = log_count(self.system, "WorkerLostError")
        out["steps_crashed"] = log_count(self.system, "step crashed")
        out["runs_resumed_by_the_stale_run_sweep"] = log_count(self.system, "resuming stale run")
        out["next_step_not_queued"] = log_count(self.system, "next step not queued")
        out["beat_restarts"] = self.system.beat_restarts
        out["secrets"] = secret_hits(self.system)
        out["duration_s"] = round(time.monotonic() - self.started, 1)
        say(f"{self.name}: lost {out['lost']}, duplicated {out['duplicated']}, settled {settled}")
        return out

    def reauthorize(self) -> int:
        """Users of calendars in needs-reauth sign in again (a new refresh token), so all can converge.

        Outside R5 a calendar lands there when a refresh answer was lost: the emulator, stricter than
        Microsoft (which keeps a used refresh token valid), refuses a rotated-away refresh token.
        """
        with self.system.connect() as conn:
            flagged = conn.execute('SELECT DISTINCT "socialAccountId", "calendarType" FROM calendar '
                                   'WHERE "needsReauth"').fetchall()
            self.system.demo.revoked = {r["socialAccountId"]: (r["calendarType"], 0) for r in flagged}
            self.system.demo._reauthorize(conn, None)
        return len(flagged)

    def close(self) -> None:
        """Stop everything."""
        self.system.close()


# --- R1 -------------------------------------------------------------------------------------------


def r1_worker_kills(sizes: Sizes) -> dict[str, Any]:
    """SIGKILL pool processes, and every fifth time the worker's main process, inside each step kind."""
    c = Campaign("R1 worker kills", sizes)
    try:
        rng = random.Random(1)
        kinds = ["token", "fetch", "import", "push"]
        pool, main, missed = Counter[str](), Counter[str](), Counter[str]()
        i = 0
        deadline = time.monotonic() + (900 if sizes.kills > 20 else 240)
        while sum(pool.values()) + sum(main.values()) < sizes.kills and time.monotonic() < deadline:
            kind = kinds[i % len(kinds)]
            if kind == "token":
                c.system.expire_tokens(0.5)
            waited = time.monotonic() + 8
            hit = None
            while time.monotonic() < waited and hit is None:
                c.changes()
                hit = next((pid for pid, k in c.system.busy().items() if k == kind), None)
                if hit is None:
                    time.sleep(0.01)
            if hit is None:
                missed[kind] += 1
                i += 1
                continue
            time.sleep(rng.uniform(0, 0.02))  # a random moment inside the step
            if (sum(pool.values()) + sum(main.values())) % 5 == 4:
                c.system.kill_worker_main()
                main[kind] += 1
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(hit, signal.SIGKILL)
                pool[kind] += 1
            i += 1
            c.run_for(rng.uniform(0.3, 1.2))
        counters = {"kills": sum(pool.values()) + sum(main.values()),
                    "pool_process_kills_by_step": dict(pool), "main_process_kills_by_step": dict(main),
                    "kinds_not_caught_in_8s": dict(missed), "worker_restarts": c.system.worker_starts - 1}
        return c.finish(counters)
    finally:
        c.close()


# --- R2 -------------------------------------------------------------------------------------------


def _first_ok_after(c: Campaign, since: datetime, timeout: float) -> float | None:
    """Seconds from ``since`` to the first run that started after it and finished ok."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c.changes()
        with contextlib.suppress(Exception), c.system.connect() as conn:
            row = conn.execute('SELECT min("finishedAt") AS t FROM sync_run WHERE outcome = \'ok\' '
                               'AND "startedAt" >= %s', (since,)).fetchone()
            if row and row["t"] is not None:
                return round((row["t"] - since).total_seconds(), 2)
        time.sleep(0.2)
    return None


def r2_own_services(sizes: Sizes) -> dict[str, Any]:
    """Really stop and start PostgreSQL, then Valkey, mid-cycle; then each once for a long outage."""
    c = Campaign("R2 our own services", sizes)
    try:
        rng = random.Random(2)
        restarts: list[dict[str, Any]] = []
        plan = [(s, rng.uniform(0.5, 3.0)) for s in ("postgres", "valkey") for _ in range(sizes.restarts)]
        plan += [("postgres", sizes.long_outage), ("valkey", sizes.long_outage)]
        for service, outage in plan:
            c.run_for(rng.uniform(2, 5))
            say(f"R2: stopping {service} for {outage:.1f}s")
            c.system.services.stop_one(service)
            c.run_for(outage)
            c.system.services.start_one(service, log=lambda _: None)
            up = datetime.now(UTC)
            recovery = _first_ok_after(c, up, 180)
            restarts.append({"service": service, "outage_s": round(outage, 1), "recovery_s": recovery})
        rec = {s: [r["recovery_s"] for r in restarts if r["service"] == s] for s in ("postgres", "valkey")}
        counters = {"restarts": restarts, "never_recovered": sum(1 for r in restarts if r["recovery_s"] is None),
                    "max_recovery_s": {s: max((v for v in vals if v is not None), default=None)
                                       for s, vals in rec.items()},
                    "worker_restarts": c.system.worker_starts - 1}
        return c.finish(counters)
    finally:
        c.close()


# --- R3 -------------------------------------------------------------------------------------------


def _violations(c: Campaign, retry_after: float) -> tuple[int, int]:
    """(throttled answers, requests sent for the same account inside the announced wait)."""
    entries = c.system.emulator.log.query()["requests"]
    throttled = [e for e in entries if e["status"] in (403, 429) and "token" not in e["endpoint"]]
    inside = 0
    for t in throttled:
        inside += sum(1 for e in entries if e["account"] == t["account"] and "token" not in e["endpoint"]
                      and t["time"] < e["received"] < t["time"] + retry_after - 0.05)
    return len(throttled), inside


def r3_throttling(sizes: Sizes) -> dict[str, Any]:
    """429 and 403 rateLimitExceeded storms with Retry-After: on one account, then on the whole app."""
    c = Campaign("R3 throttling", sizes)
    try:
        from autosync.demo.check import PROVIDER

        client, cals = c.system.demo.client, c.calendars()
        retry_after = 3
        phases: dict[str, Any] = {}
        # 1. one Google and one Outlook account: every call answers 429 / 403 rateLimitExceeded.
        c.system.emulator.log.clear()
        for cal in [next(x for x in cals if x["calendarType"] == k) for k in (1, 2)]:
            provider = PROVIDER[cal["calendarType"]]
            client.add_fault("status", count=20, provider=provider, account=cal["socialAccountId"], status=429,
                             headers={"Retry-After": str(retry_after)})
            if provider == "google":
                from autosync.emulator import google_errors

                body = google_errors.rate_limited("403-rateLimitExceeded", retry_after).response().body
                client.add_fault("status", count=20, provider=provider, account=cal["socialAccountId"], status=403,
                                 body=body, headers={"Retry-After": str(retry_after)})
        c.run_for(sizes.throttle_s)
        client.clear_faults()
        phases["one_account"] = dict(zip(("throttled", "sent_inside_cooldown"), _violations(c, retry_after),
                                         strict=True))
        t0 = time.monotonic()
        c.system.settle(240)
        phases["one_account"]["drain_s"] = round(time.monotonic() - t0, 1)
        # 2. the whole app: a tight quota on every account of both providers.
        c.system.emulator.log.clear()
        client.set_quota("google", requests_per_window=1, window_seconds=2 * retry_after, variant="alternate",
                         retry_after=retry_after)
        client.set_quota("outlook", requests_per_window=1, window_seconds=2 * retry_after, retry_after=retry_after)
        c.run_for(sizes.throttle_s)
        client.set_quota("google", requests_per_window=None)
        client.set_quota("outlook", requests_per_window=None)
        phases["whole_app"] = dict(zip(("throttled", "sent_inside_cooldown"), _violations(c, retry_after),
                                       strict=True))
        t0 = time.monotonic()
        c.system.settle(300)
        phases["whole_app"]["drain_s"] = round(time.monotonic() - t0, 1)
        counters = {"retry_after_s": retry_after, "phases": phases,
                    "sent_inside_cooldown": sum(p["sent_inside_cooldown"] for p in phases.values()),
                    "drain_s": max(p["drain_s"] for p in phases.values())}
        return c.finish(counters)
    finally:
        c.close()


# --- R4 -------------------------------------------------------------------------------------------


def _extra_hostile_google(ext_id: str, rng: random.Random) -> dict[str, Any]:
    start = datetime(2027, 1, 5, 9, tzinfo=UTC) + timedelta(hours=rng.randint(0, 500))
    item = {"kind": "calendar#event", "etag": '"1"', "id": ext_id, "status": "confirmed", "summary": "hostile",
            "updated": "2026-01-01T00:00:00.000Z",
            "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(hours=1)).isoformat(), "timeZone": "UTC"}}
    kind = rng.choice(["huge", "nul", "zone", "attendees", "rrule", "deep"])
    if kind == "huge":
        item["description"] = "x" * 2_000_000
    elif kind == "nul":
        item["summary"] = "nul\x00inside"
        item["location"] = "\x00"
    elif kind == "zone":
        item["start"]["timeZone"] = item["end"]["timeZone"] = "Mars/Olympus_Mons"
    elif kind == "attendees":
        item["attendees"] = [{"email": f"a{i}@example.com", "responseStatus": "needsAction"} for i in range(3000)]
    elif kind == "rrule":
        item["recurrence"] = [rng.choice(["RRULE:FREQ=SOMETIMES", "RRULE:FREQ=DAILY;COUNT=-1", "RRULE:", "EXDATE:x"])]
    else:
        value: Any = "bottom"
        for _ in range(600):
            value = {"d": value}
        item["extendedProperties"] = {"private": value}
    return item


def _only_nul_differs(line: str) -> bool:
    import re

    found = re.search(r"(summary) differs: provider '(.*)' vs database '(.*)'$", line, re.DOTALL)
    return bool(found) and found.group(2).replace("\x00", "") == found.group(3)  # type: ignore[union-attr]


def _shape(item: Any, depth: int = 0) -> str:
    """A short description of a hostile item (its keys and value types, long values cut)."""
    text = repr({k: (type(v).__name__ if isinstance(v, (dict, list)) else repr(v)[:40]) for k, v in item.items()}) \
        if isinstance(item, dict) else type(item).__name__
    return text[:400]


def _live_at_provider(c: Campaign, key: tuple[int, str]) -> bool:
    calendar_id, ext = key
    with c.system.connect() as conn:
        cal = conn.execute('SELECT "calendarType", "extCalendarId" FROM calendar WHERE "calendarId" = %s',
                           (calendar_id,)).fetchone()
    client = c.system.demo.client
    if cal["calendarType"] == 1:  # type: ignore[index]
        try:
            return client.google_get(cal["extCalendarId"], ext).get("status") != "cancelled"  # type: ignore[index]
        except Exception:  # gone for good
            return False
    found = client.outlook("GET", f"/events/{quote(ext, safe='')}", check=False)
    return isinstance(found, dict) and "id" in found and not found.get("error")


def r4_hostile_payloads(sizes: Sizes) -> dict[str, Any]:
    """Listing pages mixing good items (real provider events) with Hypothesis-generated malformed ones."""
    from hypothesis.errors import NonInteractiveExampleWarning

    from autosync.demo.seed import linked_calendars
    from tests.payloads import google_good, google_hostile, graph_good, graph_hostile

    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    c = Campaign("R4 hostile payloads", sizes)
    try:
        rng = random.Random(4)
        client = c.system.demo.client
        good_ids: set[tuple[int, str]] = set()
        bad = 0
        bad_ids: dict[str, str] = {}
        for round_ in range(sizes.hostile_rounds):
            with c.system.connect() as conn:
                cals = linked_calendars(conn)
                cursors = {r["calendarId"]: r["deltaLink"] for r in conn.execute(
                    'SELECT "calendarId", "deltaLink" FROM calendar').fetchall()}
            for cal in rng.sample(cals, min(4, len(cals))):
                cursor = cursors.get(cal["calendarId"])
                if not cursor:
                    continue
                items: list[dict[str, Any]] = []
                for i in range(5):
                    # generated text, times inside the sync window (outside it a provider never lists them)
                    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=rng.randint(1, 90),
                                                                                  minutes=rng.randint(0, 600))
                    end = start + timedelta(minutes=rng.randint(15, 240))
                    if cal["calendarType"] == 1:
                        body = {k: v for k, v in google_good(f"g{i}").example().items()
                                if k in ("summary", "description")}
                        body |= {"start": {"dateTime": start.isoformat()}, "end": {"dateTime": end.isoformat()}}
                        made = client.google_insert(cal["extCalendarId"], body)
                    else:
                        g = graph_good(f"o{i}").example()
                        stamp = "%Y-%m-%dT%H:%M:%S"
                        body = {"subject": g["subject"], "body": g["body"], "isAllDay": False,
                                "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
                                "end": {"dateTime": end.strftime(stamp), "timeZone": "UTC"}}
                        made = client.outlook("POST", f"/calendars/{quote(cal['extCalendarId'], safe='')}/events",
                                              body)
                    items.append(made)
                    good_ids.add((cal["calendarId"], made["id"]))
                for i in range(6):
                    ext = f"hostile-r{round_}-{cal['calendarId']}-{i}"
                    if cal["calendarType"] == 1:
                        item = google_hostile(ext, deepest=800).example() if i % 2 else \
                            _extra_hostile_google(ext, rng)
                    else:
                        item = graph_hostile(ext, deepest=800).example()
                    items.insert(rng.randint(0, len(items)), item)
                    bad += 1
                    bad_ids[ext] = _shape(item)
                if cal["calendarType"] == 1:
                    page = {"kind": "calendar#events", "items": items, "nextSyncToken": cursor}
                    # straight into the in-process emulator: its admin API's JSON parser stops short of
                    # the deepest items
                    c.system.emulator.faults.add({"provider": "google", "account": cal["socialAccountId"],
                                                  "endpoint": "google.events.list", "status": 200, "body": page})
                else:
                    page = {"value": items, "@odata.deltaLink": cursor}
                    c.system.emulator.faults.add({"provider": "outlook", "account": cal["socialAccountId"],
                                                  "endpoint": "graph.delta", "status": 200, "body": page})
            # no other edits meanwhile: the app's workload deletes random rows, hostile ones included
            time.sleep(3 * c.system.interval)
        out = c.finish({})
        # A hostile item that was repaired and imported exists only in the page the bench served, never
        # at the provider: not a lost push.
        fake = [ln for ln in out["mismatches"] if "(hostile-" in ln and "not live at the provider" in ln]
        # PostgreSQL text cannot hold U+0000: a title with NUL characters is imported without them.
        nul = [ln for ln in out["mismatches"] if _only_nul_differs(ln)]
        out["mismatches"] = [ln for ln in out["mismatches"] if ln not in fake and ln not in nul]
        out["lost"] -= len(fake) + len(nul)
        out["pushes_lost"] -= len(fake)
        out["events_lost"] -= len(nul)
        out["good_imported_without_nul_characters"] = len(nul)
        out["converged"] = not out["mismatches"]
        with c.system.connect() as conn:
            rows = {(r["calendarId"], r["extEventId"]) for r in conn.execute(
                'SELECT "calendarId", "extEventId" FROM cal_event WHERE status').fetchall()}
            skipped = conn.execute("SELECT count(DISTINCT (\"calendarId\", \"extEventId\")) AS n FROM sync_skip "
                                   "WHERE \"extEventId\" LIKE 'hostile-%%'").fetchone()["n"]  # type: ignore[index]
            imported_bad = conn.execute("SELECT count(*) AS n FROM cal_event WHERE \"extEventId\" LIKE "
                                        "'hostile-%%'").fetchone()["n"]  # type: ignore[index]
            accounted = {r["e"] for r in conn.execute(
                "SELECT \"extEventId\" AS e FROM sync_skip WHERE \"extEventId\" LIKE 'hostile-%%' UNION "
                "SELECT \"extEventId\" FROM cal_event WHERE \"extEventId\" LIKE 'hostile-%%'").fetchall()}
        live = {g for g in good_ids if _live_at_provider(c, g)}  # the workload may have deleted some since
        out.update({"good_sent": len(good_ids), "good_still_live": len(live), "good_imported": len(live & rows),
                    "good_missing": len(live - rows), "bad_sent": bad, "bad_in_sync_skip": int(skipped),
                    "bad_imported_as_repaired": int(imported_bad),
                    "bad_unaccounted": {k: v for k, v in bad_ids.items() if k not in accounted},
                    "worker_crashes": out["worker_exits_not_caused_by_the_bench"] + out["pool_processes_lost"]
                    + out["steps_crashed"]})
        out["lost"] += out["good_missing"]
        return out
    finally:
        c.close()


# --- R5 -------------------------------------------------------------------------------------------


def r5_revoked(sizes: Sizes) -> dict[str, Any]:
    """invalid_grant mid-run: the user revoked access while a run of the calendar is open."""
    c = Campaign("R5 revoked grants", sizes)
    try:
        client, cals = c.system.demo.client, c.calendars()
        picked = [x for x in cals if x["calendarType"] == 1][: (sizes.revokes + 1) // 2] + \
                 [x for x in cals if x["calendarType"] == 2][: sizes.revokes // 2]
        results = []
        for cal in picked:
            # wait for a run of this calendar to be open, then revoke (mid-run)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                c.changes()
                with c.system.connect() as conn:
                    if conn.execute('SELECT 1 FROM sync_run WHERE "calendarId" = %s AND "finishedAt" IS NULL',
                                    (cal["calendarId"],)).fetchone():
                        break
                time.sleep(0.02)
            revoked = datetime.now(UTC)
            client.revoke(cal["socialAccountId"])
            with c.system.connect() as conn:  # the stored access token is refused from now on
                conn.execute('UPDATE calendar SET "accessTokenExpirationDate" = now() - interval \'1 hour\' '
                             'WHERE "socialAccountId" = %s', (cal["socialAccountId"],))
            flagged = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and flagged is None:
                c.changes()
                with c.system.connect() as conn:
                    row = conn.execute('SELECT min("finishedAt") AS t FROM sync_run WHERE "calendarId" = %s '
                                       'AND outcome = \'needs_reauth\' AND "finishedAt" >= %s',
                                       (cal["calendarId"], revoked)).fetchone()
                flagged = row["t"] if row else None
                time.sleep(0.2)
            c.run_for(4 * c.system.interval)  # cycles pass: no more token requests may come
            with c.system.connect() as conn:
                cycles = conn.execute('SELECT count(*) AS n FROM sync_run WHERE "calendarId" = %s AND '
                                      '"startedAt" > %s AND "startedAt" <= %s', (cal["calendarId"], revoked,
                                                                                 flagged or revoked)).fetchone()["n"]
            since = flagged.timestamp() if flagged else float("inf")
            after = [e for e in c.system.emulator.log.query(account=cal["socialAccountId"])["requests"]
                     if e["endpoint"].endswith(".token") and e["received"] > since]
            results.append({"calendar": cal["calendarId"], "provider": cal["calendarType"],
                            "needs_reauth": flagged is not None, "cycles_until_needs_reauth": int(cycles),
                            "token_requests_after": len(after)})
        c.system.demo.revoked = {cal["socialAccountId"]: (cal["calendarType"], 0) for cal in picked}
        with c.system.connect() as conn:
            c.system.demo._reauthorize(conn, None)  # the users sign in again: everything must converge
        counters = {"revocations": results,
                    "max_cycles_until_needs_reauth": max((r["cycles_until_needs_reauth"] for r in results),
                                                         default=0),
                    "never_flagged": sum(1 for r in results if not r["needs_reauth"]),
                    "token_requests_after": sum(r["token_requests_after"] for r in results)}
        return c.finish(counters)
    finally:
        c.close()


# --- R6 -------------------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "Robert'); DROP TABLE cal_event;--", "' OR '1'='1", "1; DELETE FROM calendar WHERE true; --",
    "😀🎉 party 👩‍👩‍👧‍👦 🇩🇪", "שלום עולם — مرحبا بالعالم", "\u202eevil\u202c mixed עברית and English",
    "%s %d %(name)s {0} {name} {{braces}} $1 ${HOME}", "back\\slash \\n \\\\ C:\\Users\\x \\u0041",
    "<b>not html</b> &amp; &lt;", "quotes \" ' ` and ; semicolons",
]


def r6_round_trip(sizes: Sizes) -> dict[str, Any]:
    """Hostile text in every text field, app -> provider and provider -> app."""
    from autosync.normalize.google import event_from_google
    from autosync.normalize.outlook import event_from_graph

    c = Campaign("R6 round trip", sizes)
    try:
        client, cals = c.system.demo.client, c.calendars()
        sent: list[dict[str, Any]] = []
        day = datetime.now(UTC).date() + timedelta(days=3)
        n = 0
        for cal in cals[: 4]:
            for j in range(sizes.roundtrip_events * len(HOSTILE_TEXT)):
                text = HOSTILE_TEXT[j % len(HOSTILE_TEXT)]
                fields = {"summary": f"{text} #{n}", "description": f"{text}\nline two {n}", "location": text}
                n += 1
                start = datetime.combine(day + timedelta(days=j % 20), datetime.min.time()) + timedelta(hours=9)
                if j % 2:  # the app side writes it
                    with c.system.connect() as conn:
                        row = conn.execute(
                            'INSERT INTO cal_event ("calendarId", "createdBy", "eventName", description, location, '
                            '"startDate", "startTime", "endDate", "endTime") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '
                            '%s) RETURNING "eventId"', (cal["calendarId"], cal["userId"], fields["summary"],
                                                        fields["description"], fields["location"], start.date(),
                                                        start.time(), start.date(),
                                                        (start + timedelta(hours=1)).time())).fetchone()
                    sent.append({"side": "app", "cal": cal, "eventId": row["eventId"], **fields})  # type: ignore[index]
                elif cal["calendarType"] == 1:
                    made = client.google_insert(cal["extCalendarId"], {
                        "summary": fields["summary"], "description": fields["description"],
                        "location": fields["location"],
                        "start": {"dateTime": start.replace(tzinfo=UTC).isoformat()},
                        "end": {"dateTime": (start + timedelta(hours=1)).replace(tzinfo=UTC).isoformat()}})
                    sent.append({"side": "provider", "cal": cal, "ext": made["id"], **fields})
                else:
                    made = client.outlook("POST", f"/calendars/{quote(cal['extCalendarId'], safe='')}/events", {
                        "subject": fields["summary"], "body": {"contentType": "text", "content": fields["description"]},
                        "location": {"displayName": fields["location"]},
                        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
                        "end": {"dateTime": (start + timedelta(hours=1)).isoformat(), "timeZone": "UTC"}})
                    sent.append({"side": "provider", "cal": cal, "ext": made["id"], **fields})
            time.sleep(c.system.interval)  # no other edits here: the text must arrive as it was typed
        c.system.settle(180)
        compared, mismatches, examples = 0, 0, []
        with c.system.connect() as conn:
            for s in sent:
                cal = s["cal"]
                if s["side"] == "app":
                    row = conn.execute('SELECT * FROM cal_event WHERE "eventId" = %s', (s["eventId"],)).fetchone()
                else:
                    row = conn.execute('SELECT * FROM cal_event WHERE "calendarId" = %s AND "extEventId" = %s',
                                       (cal["calendarId"], s["ext"])).fetchone()
                ext = (row or {}).get("extEventId")
                provider = None
                if ext:
                    if cal["calendarType"] == 1:
                        provider = event_from_google(client.google_get(cal["extCalendarId"], ext))
                    else:
                        provider = event_from_graph(client.outlook("GET", f"/events/{quote(ext, safe='')}"))
                for field, column in (("summary", "eventName"), ("description", "description"),
                                      ("location", "location")):
                    for where, value in (("database", (row or {}).get(column)),
                                         ("provider", getattr(provider, field, None))):
                        compared += 1
                        if value != s[field]:
                            mismatches += 1
                            if len(examples) < 10:
                                examples.append(f"{s['side']}->{where} {field}: sent {s[field]!r}, got {value!r}")
        out = c.finish({"events_sent": len(sent), "fields_compared": compared, "mismatches": mismatches,
                        "mismatch_examples": examples})
        return out
    finally:
        c.close()


CAMPAIGNS = {"R1": r1_worker_kills, "R2": r2_own_services, "R3": r3_throttling, "R4": r4_hostile_payloads,
             "R5": r5_revoked, "R6": r6_round_trip}
