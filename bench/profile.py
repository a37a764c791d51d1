"""Where one large initial sync spends its time: ``python -m bench.profile --provider google --events 10000``.

Runs the benchmark's own setup (throwaway database, emulator subprocess, one worker subprocess),
times ``--repeat`` unprofiled initial syncs of one large calendar, then one more under py-spy
(``pip install py-spy``), which samples the worker and the emulator at ``--rate`` Hz, idle stacks
included. Every worker sample of the thread that runs the tasks is put in one bucket (table
``WORKER`` below: first matching rule wins), so the worker table adds up to the profiled sync's
wall time; the emulator's samples are split into its own work and idle. Prints both tables and
writes them, with the raw stacks, to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from bench.harness import (
    BIN,
    ROOT,
    Services,
    create_database,
    drop_database,
    emulator,
    redis_server,
    reset_state,
    workers,
)

Rule = tuple[str, tuple[str, ...], tuple[str, ...]]  # (bucket, any of these frames, and all of these)

# Worker buckets, in priority order. A frame matches a pattern when "function (file" starts with it
# ("name (" alone matches the function in any file).
WORKER: list[Rule] = [
    ("Redis: rate-limit slots, metrics", ("RateLimiter.", "Batch.send (autosync/metrics.py"), ()),
    ("PostgreSQL: pool checkout, BEGIN, COMMIT", ("transaction (autosync/store/db.py",), ()),
    ("run context (load_run)", ("load_run (",), ()),
    ("HTTP: waiting for a series' /instances", ("_send (autosync/providers/http.py",),
     ("outlook_details (", "getresponse (")),
    ("HTTP: waiting for the listing page", ("_send (autosync/providers/http.py",), ("getresponse (",)),
    ("HTTP: client side (requests, reading the body)", ("_send (autosync/providers/http.py",), ()),
    ("JSON parsing of the answer", ("json_body (autosync/providers/http.py",), ()),
    ("access token", ("ensure_token (",), ()),
    ("staging the page: serialize", ("page_json (",), ()),
    ("staging the page: INSERT", ("stage_page (",), ()),
    ("reading it back (SELECT + jsonb decode)", ("load_outlook_page (", "@LOAD_PAGE"), ()),
    ("normalize", ("page_from_google (", "page_from_graph ("), ()),
    ("Outlook series checks (Python)", ("outlook_details (",), ()),
    ("COPY + merge: rows in Python", ("row_of (", "_storable ("), ()),
    ("COPY + merge: PostgreSQL", ("upsert (autosync/store/events.py", "cancel_instances ("), ()),
    ("deletion tracking (sync_seen, not-seen query)", ("record_seen (", "unseen ("), ()),
    ("conflict check", ("resolve (autosync/services/conflicts.py",), ()),
    ("publishing the next step", ("enqueue (autosync/tasks.py",), ()),
    ("other SQL and Python in the steps", ("_guarded (autosync/tasks.py",), ()),
    ("Celery per-task overhead", ("trace_task (", "on_task_received (", "Request.execute_using_pool ("), ()),
    ("waiting for the next message", ("asynloop (", "synloop (", "drain_events ("), ()),
]
# Emulator buckets (every thread); idle samples are counted apart.
EMULATOR: list[Rule] = [
    ("Google: recurrence window test", ("_in_window (autosync/emulator/google_list.py",), ()),
    ("Google: instance expansion", ("_expand (autosync/emulator/google_list.py",), ()),
    ("Google: rendering items", ("render (autosync/emulator/google_list.py", "tombstone (",
                                 "_render_instance ("), ()),
    ("Google: listing (filters, paging)", ("list_events (autosync/emulator/google_list.py",), ()),
    ("Graph: round snapshot (series slots)", ("start_round (autosync/emulator/graph_delta.py",), ()),
    ("Graph: rendering items", ("Delta.page (autosync/emulator/graph_delta.py",), ()),
    ("Graph: instances listing", ("instances (autosync/emulator/graph",), ()),
    ("JSON encoding of the answer", ("Response.encode (",), ()),
    ("writing the answer", ("EmulatorHandler._write (",), ()),
    ("routing, auth, request log, token endpoint", ("Emulator.dispatch (",), ()),
    ("HTTP request parsing", ("handle_one_request (", "parse_request ("), ()),
    ("other", ("",), ()),
]
LISTINGS = ("google.events.list", "graph.delta")  # request log endpoints that fetch a page
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+):(?P<line>\d+)\)$")


def _frames(stack: str) -> list[str]:
    """'function (path:line)' frames, root first, with paths cut to autosync/… or the module's file name."""
    out = []
    for raw in stack.split(";"):
        m = _FRAME.match(raw)
        if not m:
            out.append(raw)
            continue
        path = m["file"]
        cut = path.find("autosync/")
        path = path[cut:] if cut >= 0 else path.rsplit("/", 1)[-1]
        out.append(f"{m['func']} ({path}:{m['line']}")
    return out


def _load_page_lines() -> set[str]:
    """The pull's lines that read a staged Google page back (matched as frames ``import_step (…:N``)."""
    src = (ROOT / "autosync/services/pull.py").read_text().splitlines()
    return {f"import_step (autosync/services/pull.py:{i + 1}" for i, line in enumerate(src) if "LOAD_PAGE" in line}


def _is(frame: str, pattern: str) -> bool:
    """Whether a frame is the pattern's function, bare or qualified (``Class.f``, ``outer.<locals>.f``)."""
    return frame.startswith(pattern) or ("." + pattern) in frame


def classify(frames: list[str], rules: list[Rule], load_page: set[str]) -> str | None:
    """The first rule whose frames the stack holds (None: no rule)."""
    for bucket, any_of, all_of in rules:
        if not all(any(_is(f, want) for f in frames) for want in all_of):
            continue
        for pattern in any_of:
            if pattern == "@LOAD_PAGE":
                if any(f in load_page for f in frames):
                    return bucket
            elif any(_is(f, pattern) for f in frames):
                return bucket
    return None


def parse_raw(path: Path) -> list[tuple[str, str, list[str], int]]:
    """(process, thread, frames, samples) per stack of a py-spy raw file recorded with --threads."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts = stack.split(";")
        proc = parts.pop(0) if parts and parts[0].startswith("process ") else ""
        thread = parts.pop(0) if parts and parts[0].startswith("thread ") else ""
        out.append((proc, thread, _frames(";".join(parts)), int(count)))
    return out


# Leaves that mean "blocked, not computing" (a socket, a selector, a lock, a sleep).
_IDLE_LEAVES = ("select (", "poll (", "accept (", "readinto (", "wait (", "sleep", "_wait_for_tstate_lock",
                "recv_into (", "Event.wait (", "Condition.wait (")


def worker_table(stacks: list[tuple[str, str, list[str], int]]) -> dict[str, int]:
    """Samples per bucket of the thread that ran the tasks (the one with the most task samples)."""
    load_page = _load_page_lines()
    by_thread: Counter[str] = Counter()
    for proc, thread, frames, n in stacks:
        if any(_is(f, "trace_task (") for f in frames):
            by_thread[proc + thread] += n
    busy = by_thread.most_common(1)[0][0] if by_thread else ""
    table: Counter[str] = Counter()
    for proc, thread, frames, n in stacks:
        if proc + thread != busy:
            continue
        table[classify(frames, WORKER, load_page) or "unclassified"] += n
    return dict(table)


def emulator_table(stacks: list[tuple[str, str, list[str], int]]) -> dict[str, int]:
    """Samples per bucket over every emulator thread; blocked stacks outside a request are 'idle'."""
    table: Counter[str] = Counter()
    for _, _, frames, n in stacks:
        leaf = frames[-1] if frames else ""
        serving = any(_is(f, "EmulatorHandler._serve (") for f in frames)
        if not serving and any(_is(leaf, i) for i in _IDLE_LEAVES):
            table["idle"] += n
            continue
        table[classify(frames, EMULATOR, set()) or "other"] += n
    return dict(table)


def _emulator_pid(port: int) -> int:
    for child in psutil.Process().children(recursive=True):
        try:
            if "emulator" in child.cmdline() and str(port) in child.cmdline():
                return child.pid
        except psutil.Error:
            continue
    raise RuntimeError("emulator process not found")


def _spy(pid: int, out: Path, rate: int, subprocesses: bool, gil: bool = False) -> subprocess.Popen:
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    args = [spy, "record", "--format", "raw", "--gil" if gil else "--idle", "--threads", "--rate", str(rate),
            "--pid", str(pid), "--output", str(out)]
    if subprocesses:
        args.append("--subprocesses")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    return proc


def _cpu(svc: Services, pids: dict[str, int]) -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) so far per process: the worker (and its children), the emulator,
    this database's PostgreSQL backends and a private redis-server, by role."""
    out: dict[str, dict[int, float]] = {"worker": {}, "emulator": {}, "postgresql": {}, "redis": {}}

    def add(role: str, proc: psutil.Process) -> None:
        try:
            t = proc.cpu_times()
            out[role][proc.pid] = t.user + t.system
        except psutil.Error:
            pass

    for role, pid in pids.items():
        try:
            top = psutil.Process(pid)
        except psutil.Error:
            continue
        for proc in [top, *top.children(recursive=True)]:
            add(role, proc)
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if cmd.startswith("postgres:") and svc.db_name in cmd:
            add("postgresql", proc)
        elif "redis-server" in cmd and svc.redis.rsplit(":", 1)[-1] in cmd:
            add("redis", proc)
    return out


def _cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    return {role: round(sum(t - before[role].get(pid, 0.0) for pid, t in procs.items()), 2)
            for role, procs in after.items()}


def _one_sync(svc: Services, work: Any, admin: str, pids: dict[str, int]) -> dict[str, Any]:
    import psycopg

    from autosync.emulator.client import EmulatorClient
    from bench.cycles import product_cycle
    from bench.workload import link_all

    with psycopg.connect(svc.db_url) as conn:  # Graph rotates refresh tokens: keep the latest one
        tokens = conn.execute('SELECT "socialAccountId", "refreshToken" FROM calendar').fetchall()
    reset_state(svc)
    time.sleep(0.3)  # reset_state emptied the counters' Redis db: let every worker write its own again
    link_all(svc.db_url, work)
    with psycopg.connect(svc.db_url) as conn:
        for account, token in tokens:
            conn.execute('UPDATE calendar SET "refreshToken" = %s WHERE "socialAccountId" = %s', (token, account))
    before = _cpu(svc, pids)
    cycle = product_cycle(svc.db_url, EmulatorClient(admin), 1, work.calendar_type)
    cpu = _cpu_used(before, _cpu(svc, pids))
    with psycopg.connect(svc.db_url) as conn:
        row = conn.execute("SELECT count(*) FROM cal_event").fetchone()
    rows = int(row[0]) if row else 0
    return {"wall_s": cycle["wall_s"], "rows": rows, "events_per_s": round(rows / cycle["wall_s"], 1),
            "requests": cycle["requests"], "requests_by_endpoint": cycle["requests_by_endpoint"],
            "tasks": cycle["tasks"], "outcomes": cycle["outcomes"], "cpu_s": cpu}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, time the unprofiled syncs, profile one, and return every figure."""
    from bench.workload import one_large_calendar

    svc = Services()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"provider": args.provider, "events_requested": args.events, "pool": args.pool,
                           "concurrency": args.concurrency, "rate_hz": args.rate, "gil": bool(args.gil)}
    with redis_server(svc):
        svc.apply()
        create_database(svc)
        try:
            work, seed = one_large_calendar(args.provider, args.events)
            res["events_seeded"] = work.events
            extra = {"AUTOSYNC_OUTLOOK_PAGE_SIZE": str(args.outlook_page_size)} if args.outlook_page_size else {}
            with emulator(svc, seed) as admin, \
                    workers(svc, pool=args.pool, concurrency=args.concurrency, extra_env=extra) as procs:
                pids = {"worker": procs[0].pid, "emulator": _emulator_pid(svc.emulator_port)}
                res["unprofiled"] = [_one_sync(svc, work, admin, pids) for _ in range(args.repeat)]
                if args.rate:
                    spies = [(_spy(procs[0].pid, out_dir / "worker.txt", args.rate, args.pool != "solo",
                                   args.gil), "worker"),
                             (_spy(_emulator_pid(svc.emulator_port), out_dir / "emulator.txt", args.rate, False),
                              "emulator")]
                    res["profiled"] = _one_sync(svc, work, admin, pids)
                    for spy, _ in spies:
                        spy.send_signal(signal.SIGINT)
                    for spy, _ in spies:
                        spy.wait(60)
        finally:
            drop_database(svc)
            shutil.rmtree(svc.workdir, ignore_errors=True)
    if args.rate:
        tables(res, out_dir)
    return res


def tables(res: dict[str, Any], out_dir: Path) -> None:
    """Classify the recorded stacks into ``res['worker']`` (or ``res['worker_gil']``) and ``res['emulator']``."""
    if res.get("gil"):
        res["worker_gil"] = gil_table(parse_raw(out_dir / "worker.txt"))
    else:
        res["worker"] = worker_table(parse_raw(out_dir / "worker.txt"))
    res["emulator"] = emulator_table(parse_raw(out_dir / "emulator.txt"))


# --gil: what the worker's threads hold the GIL for (one process runs the sync's Python on one core at
# a time, so this is the worker's share of the machine). First matching frame wins, outermost rules
# first where one runs inside another (the content hash inside row building).
GIL_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("content hash (Event.content_hash)", ("content_hash (",)),
    ("COPY rows formatted (psycopg)", ("write_row (",)),
    ("Outlook: slots of listed occurrences", ("occurrence_refs (", "_listing (")),
    ("Outlook: series reconciled", ("_reconcile (", "reconcile_listed (", "_reconcile_series (")),
    ("normalize", ("page_from_google (", "page_from_graph (", "event_from_graph (")),
    ("rows built (row_of, encode)", ("row_of (", "encode (", "_encoded (")),
    ("JSON parsing of the answer", ("json_body (",)),
    ("HTTP client (requests)", ("Session.send (",)),
    ("other SQL round trips (psycopg)", ("execute (", "commit (", "getconn (", "putconn (")),
)


def gil_table(stacks: list[tuple[str, str, list[str], int]]) -> dict[str, int]:
    """Samples per bucket over every thread of the worker (py-spy --gil: only the GIL's holder)."""
    table: Counter[str] = Counter()
    for _, _, frames, n in stacks:
        bucket = next((b for b, pats in GIL_RULES if any(_is(f, p) for f in frames for p in pats)), "other Python")
        table[bucket] += n
    return dict(table)


def render(res: dict[str, Any]) -> str:
    """The two tables as text: share of the profiled sync's wall time, and ms per provider page."""
    lines = [f"{res['provider']}, {res['events_seeded']} events seeded, pool {res['pool']} x{res['concurrency']}"]
    for i, r in enumerate(res["unprofiled"]):
        lines.append(f"  unprofiled sync {i + 1}: {r['rows']} rows in {r['wall_s']:.2f} s = {r['events_per_s']:.0f}"
                     f" events/s, {r['requests']} requests {r['requests_by_endpoint']}, outcomes {r['outcomes']}")
        cpu = r.get("cpu_s") or {}
        lines.append(f"    CPU s during it: {cpu} = {sum(cpu.values()):.2f} s over {r['wall_s']:.2f} s of wall")
    if "worker" not in res and "worker_gil" not in res:
        return "\n".join(lines)
    prof = res["profiled"]
    pages = max(1, sum(v for k, v in prof["requests_by_endpoint"].items() if k in LISTINGS))
    lines.append(f"  profiled sync: {prof['rows']} rows in {prof['wall_s']:.2f} s = {prof['events_per_s']:.0f} "
                 f"events/s; {pages} provider pages")
    ms = 1000 / res["rate_hz"] / pages
    if "worker_gil" in res:
        held = sum(res["worker_gil"].values())
        lines += ["", f"worker, the thread holding the GIL: {held} samples at {res['rate_hz']} Hz "
                      f"({held / res['rate_hz']:.2f} s, {held / res['rate_hz'] / prof['wall_s']:.0%} of the wall)",
                  f"  {'bucket':<48}{'share':>8}{'ms/page':>10}"]
        for bucket, n in sorted(res["worker_gil"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {bucket:<48}{n / held:>8.1%}{n * ms:>10.1f}")
        return "\n".join(lines + _emulator_lines(res, ms))
    worker = dict(res["worker"])
    # py-spy ran a little before and after the sync, with the worker waiting for a message: that
    # much waiting is not the sync's.
    outside = sum(worker.values()) - round(prof["wall_s"] * res["rate_hz"])
    idle = "waiting for the next message"
    worker[idle] = max(0, worker.get(idle, 0) - max(0, outside))
    total = sum(worker.values())
    lines += ["", f"worker, the thread running the tasks: {total} samples at {res['rate_hz']} Hz "
                  f"({total / res['rate_hz']:.2f} s)", f"  {'bucket':<48}{'share':>8}{'ms/page':>10}"]
    for bucket, n in sorted(worker.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {bucket:<48}{n / total:>8.1%}{n * ms:>10.1f}")
    return "\n".join(lines + _emulator_lines(res, ms))


def _emulator_lines(res: dict[str, Any], ms: float) -> list[str]:
    emu = {k: v for k, v in res["emulator"].items() if k != "idle"}
    busy = sum(emu.values())
    lines = ["", f"emulator, every thread, idle left out: {busy} busy samples ({busy / res['rate_hz']:.2f} s)",
             f"  {'bucket':<48}{'share':>8}{'ms/page':>10}"]
    for bucket, n in sorted(emu.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {bucket:<48}{n / max(1, busy):>8.1%}{n * ms:>10.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--provider", choices=["google", "outlook"], default="google")
    p.add_argument("--events", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=2, help="unprofiled syncs timed first (default 2)")
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second; 0: no profile")
    p.add_argument("--pool", default="solo", choices=["prefork", "threads", "solo"])
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--outlook-page-size", type=int, help="AUTOSYNC_OUTLOOK_PAGE_SIZE for the worker")
    p.add_argument("--gil", action="store_true",
                   help="sample only the worker's thread holding the GIL, every thread: where its Python time goes")
    p.add_argument("--out", default="/tmp/autosync-profile")
    p.add_argument("--classify", action="store_true", help="only re-read the stacks saved in --out")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.classify:
        res = json.loads((out / "profile.json").read_text())
        tables(res, out)
    else:
        res = run(args)
    text = render(res)
    print(text)
    (out / "profile.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (out / "profile.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
