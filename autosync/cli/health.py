"""`autosync health beat|worker`: checks for container probes."""

from __future__ import annotations

import argparse
from typing import Any

from autosync.cli.common import EXIT_OK, EXIT_PROBLEM
from autosync.settings import seconds


def cmd_health(args: argparse.Namespace) -> int:
    """One health check; prints one line, exits 0 healthy, 1 not."""
    from autosync.services import health

    if args.health_command == "beat":
        verdict = health.beat_health(args.max_age)
    else:
        verdict = health.worker_health(args.file, args.max_age)
    print(("ok: " if verdict.healthy else "unhealthy: ") + verdict.message)
    return EXIT_OK if verdict.healthy else EXIT_PROBLEM


def add_health(sub: Any) -> None:
    """`autosync health beat|worker`."""
    hc = sub.add_parser("health", help="health checks for beat and worker (for docker-compose, k8s probes)",
                        description="Health checks that exit 0 when healthy and 1 when not, for container probes.")
    hc_sub = hc.add_subparsers(dest="health_command", required=True, metavar="CHECK")
    beat = hc_sub.add_parser(
        "beat", help="a periodic fan-out ran recently (reads PostgreSQL)",
        description="Healthy when the beat's last fan-out (recorded by the worker that ran it, table fan_out) "
                    "is younger than --max-age: beat, broker, worker and PostgreSQL all work.")
    beat.add_argument("--max-age", type=seconds, metavar="SECONDS",
                      help="oldest acceptable fan-out (default two beat intervals + 60 s)")
    beat.set_defaults(func=cmd_health, needs=("database",))
    worker = hc_sub.add_parser(
        "worker", help="this host's worker touched its liveness file recently (a stat, no broker round trip)",
        description="Healthy when AUTOSYNC_WORKER_LIVENESS_FILE was touched within --max-age. A worker "
                    "touches it every 5 s while its loop runs and it is connected to the broker, and removes "
                    "it when it stops consuming. Far lighter than `celery inspect ping`.")
    worker.add_argument("--file", metavar="PATH", help="liveness file (default AUTOSYNC_WORKER_LIVENESS_FILE)")
    worker.add_argument("--max-age", type=seconds, metavar="SECONDS", help="oldest acceptable touch (default 30)")
    worker.set_defaults(func=cmd_health, needs=())
