"""Run lifecycle: open (coalescing per calendar), decide the next step, finish and notify."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from autosync import metrics
from autosync.model import Step
from autosync.services.context import App
from autosync.services.tokens import fresh_enough
from autosync.store import runs as sql
from autosync.store.api import Tx

log = logging.getLogger("autosync.run")


@dataclass(frozen=True)
class Next:
    """The step a task should enqueue after it: token, watch, fetch, import, push or done."""

    step: Step
    run_id: int
    page_id: int | None = None
    calendar_type: int | None = None
    calendar_id: int | None = None  # shown with the task (Flower), never needed to run it


def first_step(row: dict[str, Any], margin: int, *, dry_run: bool = False) -> Step:
    """Skip the token step when the stored token is still good, the watch step when it is watched
    (and always for a dry run, which changes nothing at the provider)."""
    if not (row.get("has_token") and fresh_enough("x", row.get("accessTokenExpirationDate"), margin)):
        return Step.TOKEN
    return Step.WATCH if row.get("watch_due") and not dry_run else Step.FETCH


def due(app: App, tx: Tx, types: list[int], *, quiet: bool = False, user_id: int | None = None,
        calendar_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The calendars a selection picks, with what their runs need to know about watching."""
    s = app.settings
    return tx.due(types, user_id=user_id, calendar_ids=calendar_ids, push=s.watch_enabled, quiet=quiet,
                  renew_before=s.watch_renew_before, safety_poll=s.watch_safety_poll)


def open_runs(app: App, types: list[int], *, reason: str, user_id: int | None = None,
              calendar_id: int | None = None, calendar_ids: list[int] | None = None,
              request_id: int | None = None, allow_mass_delete: bool = False,
              dry_run: bool = False) -> tuple[list[Next], int]:
    """Open runs for the selected calendars; returns (first steps of new runs, coalesced count).

    A calendar with a run in progress is not run twice: the request joins that run, and an ad-hoc
    request (or a change notification) asks for one more run after it, because the change it wants
    may have come later. The beat leaves out watched calendars that need no run.
    """
    if calendar_id is not None:
        calendar_ids = [calendar_id]
    with app.store.unit() as tx:
        return _open(app, tx, types, reason=reason, user_id=user_id, calendar_ids=calendar_ids,
                     request_id=request_id, allow_mass_delete=allow_mass_delete, dry_run=dry_run)


def periodic_fan_out(app: App, types: list[int], interval: float) -> list[Next] | None:
    """The beat's fan-out for one interval; None when another fan-out already ran in this interval.

    Two beats (a bad deploy, an HA pair) both send it every interval. Only the first of them to run
    in an interval opens runs: the claim and the runs commit together. A claim needs the previous
    fan-out to be 0.6 of an interval old. Over 0.5, two beats at any phase cannot both claim every
    interval; under 1, a fan-out that ran late (up to 0.4 of an interval, behind a queue) does not
    make the next, punctual one lose its turn.
    """
    scope = ",".join(str(t) for t in sorted(set(types)))
    with app.store.unit() as tx:
        last = tx.claim_fan_out(scope, interval)
        if last is not None:
            log.warning("fan-out skipped: another ran in this interval (two beats running?)",
                        extra={"scope": scope, "last_fan_out_s": round(last, 1), "interval_s": interval})
            return None
        steps, _ = _open(app, tx, types, reason="beat")
        tx.fan_out_runs(scope, len(steps))
    return steps


def _open(app: App, tx: Tx, types: list[int], *, reason: str, user_id: int | None = None,
          calendar_ids: list[int] | None = None, request_id: int | None = None,
          allow_mass_delete: bool = False, dry_run: bool = False) -> tuple[list[Next], int]:
    rows = due(app, tx, types, quiet=reason == "beat", user_id=user_id, calendar_ids=calendar_ids)
    by_id = {r["calendarId"]: r for r in rows}
    # A dry run never joins a real run in progress (nor a real run a dry one: see sql.COALESCE_RUNS).
    created, coalesced = tx.start_runs(list(by_id), reason=reason, request_id=request_id,
                                       rerun=reason != "beat", coalesce=not dry_run)
    if dry_run and created:
        tx.mark_dry_run([r["runId"] for r in created])
    if allow_mass_delete:
        tx.allow_mass_delete(list(by_id))
    if request_id is not None:
        tx.set_request_pending(request_id, len(created) + len(coalesced))
    margin = app.settings.token_refresh_margin
    steps = [Next(first_step(by_id[r["calendarId"]], margin, dry_run=dry_run), r["runId"],
                  calendar_type=by_id[r["calendarId"]]["calendarType"], calendar_id=r["calendarId"]) for r in created]
    return steps, len(coalesced)


def resume_stale(app: App) -> list[Next]:
    """Re-enqueue runs whose worker died mid-run; their steps are idempotent."""
    with app.store.unit() as tx:
        stale = tx.stale_runs(app.settings.run_stale_after)
        steps = []
        for r in stale:
            step = Step(r["step"]) if r["step"] in {Step.TOKEN, Step.WATCH, Step.FETCH, Step.PUSH} else Step.FETCH
            page = tx.first_staged_page(r["runId"]) if r["step"] == Step.IMPORT else None
            if page:
                step = Step.IMPORT
            steps.append(Next(step, r["runId"], page, calendar_type=r["calendarType"], calendar_id=r["calendarId"]))
            # A fresh heartbeat, so the next sweep does not resume it again while it runs.
            tx.touch(r["runId"], step)
    for s in steps:
        log.warning("resuming stale run", extra={"run": s.run_id, "step": s.step})
    return steps


def finish(tx: Tx, run_id: int, outcome: str, error: str | None = None, *, requests: int = 0,
           counts: dict[str, int] | None = None) -> dict[str, Any] | None:
    """Close a run (once) with its last counts, record the outcome on the calendar, settle its requests."""
    run = tx.finish_run(run_id, outcome, error, requests, counts or sql.NO_COUNTS)
    if run is None:
        return None
    _log_run(run)
    if not run["dryRun"]:
        metrics.run_finished(run)
    if run["fullSync"] or run["pagesFetched"]:
        tx.clean_run(run_id)
    if run["requestIds"] and not run["rerunRequested"]:
        _settle_requests(tx, run, failed=outcome != "ok")
    return run


def _settle_requests(tx: Tx, run: dict[str, Any], *, failed: bool) -> None:
    for req in tx.settle_requests(run["requestIds"], failed):
        if req["finishedAt"] is not None and req["silentNotification"] and req["userId"] is not None:
            tx.notify(req["userId"], "sync_complete",
                       {"requestId": req["requestId"], "silentNotification": 1,
                        "failed": req["failed"], "calendarType": req["calendarType"]})


def rerun_if_requested(app: App, run: dict[str, Any] | None) -> list[Next]:
    """Start the extra run a coalesced ad-hoc request asked for, handing it the waiting requests."""
    if run is None or not run["rerunRequested"]:
        return []
    with app.store.unit() as tx:
        rows = due(app, tx, [1, 2], calendar_ids=[run["calendarId"]])
        if not rows:
            _settle_requests(tx, run, failed=True)
            return []
        created = tx.start_rerun(run["calendarId"], run["requestIds"])
        if created is None or not created["new"]:
            return []
        return [Next(first_step(rows[0], app.settings.token_refresh_margin), created["runId"],
                     calendar_type=rows[0]["calendarType"], calendar_id=run["calendarId"])]


def _log_run(run: dict[str, Any]) -> None:
    """The one structured line per run."""
    duration = (run["finishedAt"] - run["startedAt"]).total_seconds()
    log.info("run finished", extra={
        "run": run["runId"], "calendar": run["calendarId"], "user": run["userId"],
        "provider": {1: "google", 2: "outlook"}.get(run["calendarType"] or 0), "outcome": run["outcome"],
        "error": run["error"], "full_sync": run["fullSync"], "pages": run["pagesFetched"],
        "upserted": run["eventsUpserted"], "unchanged": run["eventsUnchanged"], "deleted": run["eventsDeleted"],
        "skipped": run["eventsSkipped"], "pushed": run["pushCreated"] + run["pushUpdated"] + run["pushDeleted"],
        "push_failed": run["pushFailed"], "conflicts": run["conflicts"], "requests": run["providerRequests"],
        "duration_s": round(duration, 3), **({"dry_run": True} if run["dryRun"] else {})})
