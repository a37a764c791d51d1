"""Benchmark of `autosync webhooks` against hostile clients: `python -m bench.receiver [--quick]`.

Real PostgreSQL (a throwaway database), a Redis broker, and the receiver as a subprocess. Measures:
idle connections held (RSS, answer time of valid notifications meanwhile); a flood of forged
notifications (forged rate, p50/p99 answer time of valid ones, bytes sent to PostgreSQL per forged
request); RSS after an endless body; and slow-loris clients against the same WSGI app served by
waitress (ours) and by gunicorn's gthread worker (when gunicorn is installed).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import requests

from bench.harness import ROOT, Services, create_database, drop_database, free_port, redis_server
from tests.e2e.receiver import Relay, Seeded, receiver_env, rss_mb, seed_channels, start

_numbers = iter(range(10_000, 10**12))


def _valid(url: str, seeded: Seeded, timeout: float = 10) -> float:
    """Seconds until a valid Google notification is answered 200 (inf when it is not)."""
    started = time.monotonic()
    try:
        answer = requests.post(url + "/hooks/google", data=b"", timeout=timeout, headers={
            "X-Goog-Channel-ID": seeded.google_id, "X-Goog-Channel-Token": seeded.google_secret,
            "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": str(next(_numbers))})
    except requests.RequestException:
        return float("inf")
    return time.monotonic() - started if answer.status_code == 200 else float("inf")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(_pct(values, 0.5) * 1000, 1),
            "p99_ms": round(_pct(values, 0.99) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


def idle_connections(url: str, proc: Any, seeded: Seeded, count: int) -> dict[str, Any]:
    """Hold ``count`` idle connections (half with half a request line); answer times meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    try:
        for i in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            if i % 2:
                sock.sendall(b"POST /hooks/google HT")
            held.append(sock)
        time.sleep(0.5)
        times = [_valid(url, seeded) for _ in range(50)]
        alive = 0
        for sock in held:
            sock.setblocking(False)
            try:
                alive += sock.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return {"connections": count, "still_open": alive, "rss_mb": round(rss_mb(proc.pid), 1), **_ms(times)}
    finally:
        for sock in held:
            sock.close()


def _flooder(url: str, seconds: float, counter: Any) -> None:
    """One process: 4 keep-alive connections sending forged notifications as fast as they are answered."""
    host, port = url.removeprefix("http://").split(":")

    def run() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        end, sent = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            if sent % 2:
                conn.request("POST", "/hooks/google", body=b"", headers={
                    "X-Goog-Channel-ID": str(uuid.uuid4()), "X-Goog-Channel-Token": "forged",
                    "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "1"})
            else:
                conn.request("POST", "/hooks/graph", body=json.dumps({"value": [
                    {"subscriptionId": str(uuid.uuid4()), "clientState": "x", "changeType": "updated"}]}))
            conn.getresponse().read()
            sent += 1
        with counter.get_lock():
            counter.value += sent

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def flood(url: str, proc: Any, seeded: Seeded, relay: Relay, seconds: float) -> dict[str, Any]:
    """Forged notifications from 2 processes while a valid one is sent every 50 ms."""
    counter = multiprocessing.Value("q", 0)
    senders = [multiprocessing.Process(target=_flooder, args=(url, seconds, counter)) for _ in range(2)]
    before = relay.sent
    for p in senders:
        p.start()
    time.sleep(0.3)
    times = []
    end = time.monotonic() + seconds - 0.6
    while time.monotonic() < end:
        times.append(_valid(url, seeded))
        time.sleep(0.05)
    for p in senders:
        p.join()
    forged = int(counter.value)
    valid_bytes = 900 * len(times)  # what the taken ones cost (measured alone: about 800 bytes each)
    return {"seconds": seconds, "forged": forged, "forged_per_s": round(forged / seconds),
            "bytes_to_postgresql": relay.sent - before,
            "bytes_per_forged": round(max(0, relay.sent - before - valid_bytes) / max(forged, 1), 3),
            "rss_mb": round(rss_mb(proc.pid), 1), **_ms(times)}


def endless_body(url: str, proc: Any) -> dict[str, Any]:
    """Claim 2 GB (and stream chunks): bytes the client could push before being cut off, RSS after."""
    host, port = url.removeprefix("http://").split(":")
    out = {}
    for name, head in (("content-length 2 GB", b"Content-Length: 2000000000\r\n"),
                       ("chunked", b"Transfer-Encoding: chunked\r\n")):
        sent = 0
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /hooks/graph HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
            with contextlib.suppress(OSError):
                while sent < 2_000_000_000:
                    sock.sendall(b"x" * 65536)
                    sent += 65536
        out[name] = {"client_sent_mb": round(sent / 2**20, 1), "rss_mb": round(rss_mb(proc.pid), 1)}
    return out


def slow_loris(url: str, seeded: Seeded, clients: int) -> dict[str, Any]:
    """``clients`` connections dripping a header byte a second; then time valid notifications."""
    host, port = url.removeprefix("http://").split(":")
    stop = threading.Event()
    socks = []
    for _ in range(clients):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"POST /hooks/google HTTP/1.1\r\nX-A: ")
        socks.append(sock)

    def drip() -> None:
        while not stop.wait(1.0):
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        time.sleep(1.0)
        times = [_valid(url, seeded, timeout=10) for _ in range(5)]
    finally:
        stop.set()
        for sock in socks:
            sock.close()
    answered = [t for t in times if t != float("inf")]
    return {"slow_clients": clients, "valid_answered": f"{len(answered)}/{len(times)}",
            "valid_max_ms": round(max(times) * 1000, 1) if answered else "no answer within 10 s"}


@contextlib.contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[tuple[Any, str]]:
    """The same WSGI app under `gunicorn -k gthread -w 1 --threads 8`."""
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-k", "gthread", "-w", "1", "--threads",
                             "8", "-b", f"127.0.0.1:{port}", "bench.receiver_wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/readyz", timeout=1).ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    """Run every part and write bench/results/<date>-receiver.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer connections, a shorter flood")
    args = parser.parse_args()
    svc = Services()
    results: dict[str, Any] = {"date": date.today().isoformat(), "quick": args.quick}
    with redis_server(svc) as redis_url:
        os.environ.update(svc.env())
        create_database(svc)
        try:
            seeded = seed_channels(svc.db_url)
            parts = svc.db_url.split("@", 1)[1].split("/", 1)[0].split(":")
            relay = Relay(parts[0], int(parts[1]) if len(parts) > 1 else 5432)
            env = receiver_env(relay.url_for(svc.db_url), f"{redis_url}/20", AUTOSYNC_LOG_LEVEL="WARNING",
                               AUTOSYNC_WEBHOOK_HEADER_TIMEOUT="60")
            with start(env) as (proc, url):
                results["baseline"] = {**_ms([_valid(url, seeded) for _ in range(50)]),
                                       "rss_mb": round(rss_mb(proc.pid), 1)}
                results["idle"] = [idle_connections(url, proc, seeded, n)
                                   for n in ((500, 2000) if args.quick else (1000, 2000, 3900))]
                results["flood"] = flood(url, proc, seeded, relay, 5 if args.quick else 15)
                results["endless_body"] = endless_body(url, proc)
                results["slow_loris_waitress"] = slow_loris(url, seeded, 200)
                results["rss_end_mb"] = round(rss_mb(proc.pid), 1)
            if shutil.which("gunicorn", path=str(Path(sys.executable).parent)):
                with gunicorn(receiver_env(svc.db_url, f"{redis_url}/20", AUTOSYNC_LOG_LEVEL="WARNING")) as (_, url):
                    results["gunicorn_gthread_baseline"] = _ms([_valid(url, seeded) for _ in range(20)])
                    results["slow_loris_gunicorn_gthread"] = slow_loris(url, seeded, 200)
            else:
                results["slow_loris_gunicorn_gthread"] = "skipped: gunicorn is not installed (pip install gunicorn)"
            relay.close()
        finally:
            drop_database(svc)
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / f"{results['date']}-receiver{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
