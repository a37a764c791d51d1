"""The shipped alert rules and Grafana dashboard name only series that `autosync metrics` really exposes.

The names are taken from each PromQL expression (strings, label matchers, ranges, label lists and
Grafana variables removed; function and aggregation names and keywords left out) and compared with a
live scrape after a real sync and fan-out. With `promtool` on PATH the rules are also checked and
unit-tested by Prometheus itself (deploy/prometheus/alerts_test.yml).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.helpers import link, sync
from tests.e2e.metrics_helpers import metrics_process, scrape
from tests.e2e.test_pushback_google import app_insert, at

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "autosync.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
            "unless", "inf", "nan"}


def series_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    found = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[m.end():].lstrip().startswith("(") or m.group(0).lower() in KEYWORDS:
            continue  # a function or aggregation, or a keyword
        found.add(m.group(0))
    return found


def rule_exprs() -> list[tuple[str, str]]:
    """(alert name, expression) of every rule in alerts.yml."""
    doc = yaml.safe_load(RULES.read_text())
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in doc["groups"] for r in g["rules"]]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels") or [])


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard."""
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in _panels(doc["panels"]) for t in p.get("targets") or []]


def test_the_name_extractor_finds_series_and_skips_functions_labels_and_variables() -> None:
    expr = ('sum by (provider) (rate(autosync_x_total{status=~"5..|4xx"}[$__rate_interval])) / '
            'clamp_min(scalar(max(autosync_y offset 1h)), 1) > 0.05 and on() absent(autosync_z) '
            'or histogram_quantile(0.9, sum by (le) (rate(autosync_h_bucket[5m]))) unless time() - 1e3')
    assert series_names(expr) == {"autosync_x_total", "autosync_y", "autosync_z", "autosync_h_bucket"}


def test_alert_rules_and_dashboard_name_only_exported_series(worker, db, emu) -> None:
    from autosync.tasks import fan_out

    google = link(db, emu, "google")
    app_insert(db, google, "Lunch", at(2, 12), at(2, 13))
    sync(google.user_id)
    sync(link(db, emu, "outlook", email="carol@example.com").user_id)
    fan_out.apply(args=([1, 2],)).get()
    with metrics_process() as url:
        names = scrape(url).names()
    assert {"autosync_runs_total", "autosync_sync_lag_seconds_bucket", "autosync_fan_out_last_timestamp_seconds",
            "autosync_provider_request_seconds_bucket"} <= names
    rules, panels = rule_exprs(), dashboard_exprs()
    assert len(rules) >= 8 and len(panels) >= 20
    for where, exprs in (("alert", rules), ("panel", panels)):
        for title, expr in exprs:
            used = series_names(expr)
            assert used, f"{where} {title!r}: no series found in {expr!r}"
            assert used <= names, f"{where} {title!r} names series autosync does not export: {sorted(used - names)}"


def test_alert_rules_cover_the_operational_failures_and_say_what_to_do() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"AutosyncSyncsStale", "AutosyncProviderErrorRatio", "AutosyncNeedsReauthGrowing", "AutosyncOutboxGrowing",
            "AutosyncNotificationChannelsLost", "AutosyncNoFanOut"} <= names
    for r in rules:
        assert r["labels"]["severity"] in {"info", "warning", "critical"}, r["alert"]
        assert r["annotations"]["summary"], r["alert"]


def test_a_rule_naming_a_series_autosync_does_not_export_is_caught() -> None:
    names = {"autosync_runs_total"}
    assert not series_names("rate(autosync_runs_totl[5m]) > 0") <= names  # a typo does not pass


def test_prometheus_accepts_the_rules_and_their_unit_tests() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus); the name checks above still ran")
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULES.with_name("alerts_test.yml"))]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
