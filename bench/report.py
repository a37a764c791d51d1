"""The printed table, the target verdicts and the JSON results file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


# Issue 16: one large calendar's initial sync, end to end, against the import path alone.
LARGE_RATIO_TARGETS = {"google": 0.5, "outlook": 0.4}


def import_path_ratios(res: dict[str, Any]) -> None:
    """``import_path_ratio`` of every large calendar: its events/s over the same run's import-path rate."""
    rate = (res.get("import_path") or {}).get("autosync_upsert_events_per_s")
    for big in res.get("large", []):
        big["import_path_events_per_s"] = rate
        big["import_path_ratio"] = round(big["events_per_s"] / rate, 3) if rate else None
        own = (big.get("own_rows_import") or {}).get("events_per_s")
        # Against the import path of the calendar's own rows (Graph items are ~3x Google's JSON).
        big["own_rows_ratio"] = round(big["events_per_s"] / own, 3) if own else None


def _own_rows(big: dict[str, Any]) -> str:
    own = big.get("own_rows_import")
    if not own or not big.get("own_rows_ratio"):
        return ""
    return (f"; its own rows through the import path {own['events_per_s']}/s ({own['avg_provider_json_bytes']} B "
            f"of provider JSON each), {big['own_rows_ratio']:.0%} of that")


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured figure and met/missed."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: Any, met: bool, where: str) -> None:
        out.append({"target": name, "measured": value, "met": bool(met), "where": where})

    for s in res.get("steady", []):
        tag = f"{s['provider']} {s['calendars']} calendars"
        if s.get("notifications"):
            tag += ", change notifications on"
            q = s["quiet_cycle"]
            add("unchanged watched calendar costs 0 provider requests", q["requests"], q["requests"] == 0,
                f"{tag}, 0% changed")
            if s["calendars"] >= 10000:
                add("10k-calendar cycle >= 5x faster than baseline", s["speedup_vs_baseline"],
                    s["speedup_vs_baseline"] >= 5, tag)
                add("10k-calendar cycle >= 10x fewer requests than baseline", s["fewer_requests_vs_baseline"],
                    s["fewer_requests_vs_baseline"] >= 10, tag)
            continue
        if "unchanged_cycle" in s:
            u = s["unchanged_cycle"]
            add("unchanged calendar = exactly 1 provider request", u["unchanged_calendar_requests"],
                u["unchanged_exactly_one"], f"{tag}, 0% changed")
        c = s["steady_cycle"]
        add("unchanged calendar = exactly 1 provider request", c["unchanged_calendar_requests"],
            c["unchanged_exactly_one"], f"{tag}, 1% changed")
        if "chain_overhead_vs_noop" in s:
            add("chain overhead per unchanged calendar <= 3x a no-op task", s["chain_overhead_vs_noop"],
                s["chain_overhead_vs_noop"] <= 3, tag)
        if "speedup_vs_baseline" in s and s["calendars"] >= 10000:
            add("10k-calendar cycle >= 5x faster than baseline", s["speedup_vs_baseline"],
                s["speedup_vs_baseline"] >= 5, tag)
            add("10k-calendar cycle >= 10x fewer requests than baseline", s["fewer_requests_vs_baseline"],
                s["fewer_requests_vs_baseline"] >= 10, tag)
    scrape = (res.get("metrics") or {}).get("scrape")
    if scrape:
        add("metrics scrape at 100k calendars < 1 s", f"{scrape['wall_ms_median']} ms median, "
            f"{scrape['wall_ms_max']} ms max", scrape["wall_ms_max"] < 1000, f"{scrape['calendars']} calendars")
    lat = res.get("latency")
    if lat:
        tag = f"{lat['pool']} {lat['processes']}x{lat['concurrency']}, {lat['steady_polled']['calendars']} calendars"
        for part, bound in (("steady_polled", 0.8), ("initial_sync", 0.6), ("push", 0.6)):
            p = lat[part]
            add(f"{part} at 150 ± 50 ms >= {bound} of its 0 ms rate", p["ratio"], p["ratio"] >= bound, tag)
        for part in ("steady_polled", "initial_sync"):
            p = lat[part]
            add(f"{part} 0 ms rate >= prefork x{lat['prefork_zero_latency']['concurrency']} (the previous default)",
                [p["zero_latency_cal_per_s"], p["prefork_zero_latency_cal_per_s"]],
                p["zero_latency_cal_per_s"] >= p["prefork_zero_latency_cal_per_s"], tag)
        peak = max(lat[part]["peak_rss_mb"] for part in ("steady_polled", "initial_sync", "push"))
        add("whole worker RSS <= 400 MB under latency", peak, peak <= 400, tag)
    ab = res.get("latency_ab")
    if ab:
        tag = f"{ab['pool']} {ab['processes']}x{ab['concurrency']}, {len(ab['rounds'])} interleaved rounds"
        for part in ("steady_polled", "initial_sync"):
            a = ab[part]
            add(f"{part} 0 ms rate >= prefork x{ab['prefork_concurrency']} (median of interleaved rounds)",
                [a["io_pool_median_cal_per_s"], a["prefork_median_cal_per_s"]],
                a["median_ratio"] >= 1.0, tag)
    imp = res.get("import_path")
    if imp:
        add("import >= 70% of raw COPY+upsert", imp["efficiency"], imp["efficiency"] >= 0.7,
            f"{imp['events']} events")
    for big in res.get("large", []):
        tag = f"{big['provider']} ~{big['events_requested']} events"
        if big["events_requested"] >= 50000:
            add("worker RSS <= 150 MB at 50k events", big["peak_rss_mb"], big["peak_rss_mb"] <= 150, tag)
            bound = LARGE_RATIO_TARGETS[big["provider"]]
            ratio = big.get("import_path_ratio")
            add(f"initial sync at 50k events >= {bound} of the import path", ratio,
                ratio is not None and ratio >= bound, tag)
        add("broker messages < 64 KB", big["max_message_bytes"], big["max_message_bytes"] < 65536, tag)
    return out


def table(res: dict[str, Any]) -> str:
    """A plain-text summary of the run."""
    start, end = res["code_at_start"], res["code_at_end"]
    lines = [f"autosync benchmarks — pool {res['pool']} x{res['concurrency']}, {res['cpus']} CPUs, "
             f"{'quick' if res['quick'] else 'full'} run, {res['total_s']:.0f}s, code {start['commit']}"
             f"{' (autosync/ modified)' if start['autosync_dirty'] else ''}"]
    if start != end:
        lines.append(f"WARNING: the code changed during the run (now {end['commit']}"
                     f"{', autosync/ modified' if end['autosync_dirty'] else ''}); workers restart per scenario, "
                     "so scenarios may have measured different versions")
    head = (f"{'scenario':<34}{'wall s':>9}{'cal/s':>9}{'req/cal':>9}{'tasks/cal':>10}{'SQL/cal':>9}"
            f"{'txn/cal':>9}{'events':>9}")
    lines += ["", head, "-" * len(head)]
    for s in res.get("steady", []):
        tag = f"{s['provider']} {s['calendars']}" + (f" ({s['events_seeded'] // s['calendars']} ev)"
                                                       if s["events_seeded"] > 20 * s["calendars"] else "")
        if s.get("notifications"):
            tag += " push"
        rows = [("initial sync", s["initial_sync"]), ("0% changed", s.get("unchanged_cycle") or s.get("quiet_cycle")),
                ("1% changed", s["steady_cycle"]), ("baseline (seed-style)", s.get("baseline_cycle"))]
        for label, c in rows:
            if c:
                lines.append(f"{tag + ' ' + label:<34}{c['wall_s']:>9.2f}{c['calendars_per_s']:>9.0f}"
                             f"{c['requests_per_calendar']:>9.2f}{c['tasks_per_calendar']:>10.2f}"
                             f"{c['sql_statements_per_calendar']:>9.2f}{c['sql_transactions_per_calendar']:>9.2f}"
                             f"{c['events_transferred']:>9}")
        if s.get("noop"):
            n = s["noop"]
            lines.append(f"{tag + ' no-op task x' + str(n['tasks']):<34}{n['wall_s']:>9.2f}{n['tasks_per_s']:>9.0f}")
        extras = [f"{k}={s[k]}" for k in ("speedup_vs_baseline", "fewer_requests_vs_baseline",
                                          "fewer_statements_vs_baseline", "fewer_events_transferred_vs_baseline",
                                          "chain_overhead_vs_noop", "unchanged_chain_overhead_vs_noop") if k in s]
        if extras:
            lines.append("    " + ", ".join(extras))
    if res.get("latency"):
        lat = res["latency"]
        lines += ["", f"under provider latency ({lat['pool']}, {lat['processes']} processes x {lat['concurrency']}, "
                      f"production rate limits on):",
                  f"{'part':<16}{'cal':>6}{'0 ms cal/s':>12}{'150±50 cal/s':>14}{'ratio':>8}{'prefork 0 ms':>14}"
                  f"{'RSS MB':>8}{'pool waits':>12}"]
        for part in ("steady_polled", "initial_sync", "push"):
            p = lat[part]
            waits = p["db_pool"]["at_latency"]["waited"] + p["db_pool"]["at_zero"]["waited"]
            lines.append(f"{part:<16}{p['calendars']:>6}{p['zero_latency_cal_per_s']:>12.0f}{p['cal_per_s']:>14.0f}"
                         f"{p['ratio']:>8.2f}{p.get('prefork_zero_latency_cal_per_s', 0):>14.0f}"
                         f"{p['peak_rss_mb']:>8.0f}{waits:>12}")
        cost = lat["limits_cost"]
        lines.append(f"rate limiter's own cost at 0 ms (steady): {cost['cost']:.0%} "
                     f"({cost['steady_polled_zero_latency_limits_on_cal_per_s']} vs "
                     f"{cost['steady_polled_zero_latency_limits_off_cal_per_s']} cal/s with limits off)")
    if res.get("latency_ab"):
        ab = res["latency_ab"]
        lines += ["", f"0 ms, interleaved: {ab['pool']} {ab['processes']}x{ab['concurrency']} (A) against prefork "
                      f"x{ab['prefork_concurrency']} (B), cal/s:",
                  f"{'round':<7}{'first':>6}{'steady A':>10}{'steady B':>10}{'ratio':>7}{'initial A':>11}"
                  f"{'initial B':>11}{'ratio':>7}"]
        for r in ab["rounds"]:
            lines.append(f"{r['round']:<7}{r['first']:>6}{r['io_pool']['steady_polled']:>10.0f}"
                         f"{r['prefork']['steady_polled']:>10.0f}{r['ratio']['steady_polled']:>7.2f}"
                         f"{r['io_pool']['initial_sync']:>11.0f}{r['prefork']['initial_sync']:>11.0f}"
                         f"{r['ratio']['initial_sync']:>7.2f}")
        lines.append(f"medians: steady {ab['steady_polled']['median_ratio']:.2f}, "
                     f"initial {ab['initial_sync']['median_ratio']:.2f}")
    if res.get("import_path"):
        i = res["import_path"]
        lines += ["", f"import path ({i['events']} events, median of {i['repeats']}): autosync upsert "
                      f"{i['autosync_upsert_events_per_s']}/s vs raw COPY+upsert "
                      f"{i['raw_copy_upsert_events_per_s']}/s = {i['efficiency']:.0%}; re-import unchanged "
                      f"{i['reimport_unchanged_autosync_events_per_s']}/s vs raw "
                      f"{i['reimport_unchanged_raw_events_per_s']}/s"]
    for big in res.get("large", []):
        ratio = big.get("import_path_ratio")
        lines.append(f"large {big['provider']} calendar ~{big['events_requested']}: {big['rows_imported']} rows in "
                     f"{big['wall_s']:.1f}s = {big['events_per_s']:.0f} events/s"
                     f"{f' ({ratio:.0%} of the import path)' if ratio is not None else ''}"
                     f"{_own_rows(big)}, "
                     f"{big['requests']} requests, peak worker RSS "
                     f"{big['peak_rss_mb']} MB (idle {big['idle_rss_mb']}), largest message "
                     f"{big['max_message_bytes']} B ({big['max_message_task']})")
    if res.get("metrics"):
        sc, rc = res["metrics"]["scrape"], res["metrics"]["record"]
        off = sc["notifications_off"]
        lines += ["", f"metrics scrape, {sc['calendars']} calendars all watched ({sc['scrapes']} scrapes over HTTP): "
                      f"median {sc['wall_ms_median']} ms (PostgreSQL {sc['postgresql_ms_median']} ms, Redis "
                      f"{sc['redis_ms_median']} ms), min {sc['wall_ms_min']}, max {sc['wall_ms_max']} ms; "
                      f"{sc['samples']} samples, {sc['bytes']} bytes; load average {sc['load_average_1m']}",
                  f"metrics scrape, notifications off: median {off['wall_ms_median']} ms (PostgreSQL "
                  f"{off['postgresql_ms_median']} ms), min {off['wall_ms_min']}, max {off['wall_ms_max']} ms; "
                  f"load average {off['load_average_1m']}",
                  f"metrics recording: a request {rc['request_us']} us, a finished run {rc['run_finished_us']} us "
                  f"(Redis PING {rc['redis_ping_us']} us, URL classification {rc['classify_only_us']} us)"]
    lines += ["", "targets:"]
    for t in res["targets"]:
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']} ({t['where']})")
    return "\n".join(lines)


def write(res: dict[str, Any], path: Path | None = None) -> Path:
    """``path``, or bench/results/<YYYY-MM-DD>[-parts][-quick].json."""
    RESULTS.mkdir(exist_ok=True)
    only = "-" + "-".join(sorted(res["only"])) if res.get("only") else ""
    path = path or RESULTS / f"{date.today().isoformat()}{only}{'-quick' if res['quick'] else ''}.json"
    path.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return path
