"""Entry point: run the campaigns, print a table, write bench/results/faults-DATE.json, and exit
non-zero when a figure that must be zero is not (so CI fails)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.faults.campaigns import CAMPAIGNS, FULL, QUICK
from bench.faults.system import ROOT, say


def must_be_zero(name: str, res: dict[str, Any]) -> dict[str, float]:
    """The campaign's figures that must be zero (R5: cycles until needs-reauth must be at most 1)."""
    if "error" in res:
        return {"campaign crashed": 1}
    out = {"lost": res.get("lost", 0), "duplicated": res.get("duplicated", 0)}
    if name == "R2":
        out["never recovered"] = res["never_recovered"]
    if name == "R3":
        out["sent inside a cool-down"] = res["sent_inside_cooldown"]
    if name == "R4":
        out["worker crashes"] = res["worker_crashes"]
        out["good events missing"] = res["good_missing"]
        out["bad items neither skipped nor imported"] = len(res["bad_unaccounted"])
    if name == "R5":
        out["cycles until needs-reauth > 1"] = max(0, res["max_cycles_until_needs_reauth"] - 1)
        out["token requests after"] = res["token_requests_after"]
        out["never flagged"] = res["never_flagged"]
    if name == "R6":
        out["mismatches"] = res["mismatches"]
    if name == "R7":
        out["hits"] = res["hits"]
    return out


def summary(name: str, res: dict[str, Any]) -> str:
    """One line of the campaign's own counters."""
    if "error" in res:
        return "crashed: " + res["error"].splitlines()[-1][:80]
    if name == "R1":
        return (f"kills {res['kills']} (pool {sum(res['pool_process_kills_by_step'].values())}, main "
                f"{sum(res['main_process_kills_by_step'].values())}); by step "
                + ", ".join(f"{k} {n}" for k, n in _by_step(res).items()))
    if name == "R2":
        return "max recovery " + ", ".join(f"{k} {v}s" for k, v in res["max_recovery_s"].items()) + \
            f"; restarts {len(res['restarts'])}"
    if name == "R3":
        return f"inside cool-down {res['sent_inside_cooldown']}; drain {res['drain_s']}s; " + ", ".join(
            f"{k}: {v['throttled']} throttled" for k, v in res["phases"].items())
    if name == "R4":
        return (f"crashes {res['worker_crashes']}; good {res['good_imported']}/{res['good_sent']}; bad "
                f"{res['bad_sent']}: {res['bad_in_sync_skip']} in sync_skip, "
                f"{res['bad_imported_as_repaired']} repaired")
    if name == "R5":
        return (f"cycles until needs-reauth max {res['max_cycles_until_needs_reauth']}; token requests after "
                f"{res['token_requests_after']}")
    if name == "R6":
        return f"fields compared {res['fields_compared']}, mismatches {res['mismatches']}"
    if name == "R7":
        return (f"{res['secrets_issued']} secrets in {res['log_lines']} log lines and {res['tables']} tables: "
                f"{res['hits']} hits")
    return ""


def _by_step(res: dict[str, Any]) -> dict[str, int]:
    pool, main = res["pool_process_kills_by_step"], res["main_process_kills_by_step"]
    return {k: pool.get(k, 0) + main.get(k, 0) for k in ("token", "fetch", "import", "push")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer kills and restarts, shorter outages (CI)")
    p.add_argument("--only", nargs="*", choices=sorted(CAMPAIGNS), help="run only these campaigns (R7 always)")
    p.add_argument("--out", help="JSON path (default bench/results/faults-DATE[-quick].json)")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    results: dict[str, Any] = {}
    for name in args.only or sorted(CAMPAIGNS):
        try:
            results[name] = CAMPAIGNS[name](sizes)
        except Exception:  # a campaign that breaks is a failed figure, not a lost report
            results[name] = {"error": traceback.format_exc(), "lost": 0, "duplicated": 0}
            say(f"{name} crashed:\n{results[name]['error']}")
    scans = {k: v.get("secrets", {}) for k, v in results.items()}
    results["R7"] = {"lost": 0, "duplicated": 0,
                     "secrets_issued": sum(s.get("secrets_issued", 0) for s in scans.values()),
                     "log_lines": sum(s.get("log_lines", 0) for s in scans.values()),
                     "tables": max((s.get("tables", 0) for s in scans.values()), default=0),
                     "hits": sum(s.get("hits", 0) for s in scans.values()),
                     "where": {k: s.get("where", {}) for k, s in scans.items() if s.get("hits")}}
    failures = {name: {k: v for k, v in must_be_zero(name, res).items() if v}
                for name, res in results.items()}
    failures = {k: v for k, v in failures.items() if v}
    doc = {"quick": args.quick, "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
           "total_s": round(time.monotonic() - started, 1), "code": _commit(), "campaigns": results,
           "failures": failures}
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    name = f"faults-{day}{'-quick' if args.quick else ''}.json"
    path = Path(args.out) if args.out else ROOT / "bench" / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"{'campaign':<8} {'lost':>5} {'dup':>4}  figures")
    for name, res in sorted(results.items()):
        print(f"{name:<8} {res.get('lost', '-'):>5} {res.get('duplicated', '-'):>4}  {summary(name, res)}")
    print(f"\ntotal {doc['total_s']}s; results: {path}")
    if failures:
        print("FAILED (must be zero): " + "; ".join(f"{n}: " + ", ".join(f"{k} {v}" for k, v in f.items())
                                                   for n, f in failures.items()))
        return 1
    print("every must-be-zero figure is zero")
    return 0


def _commit() -> str:
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
