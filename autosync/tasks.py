"""Celery tasks: thin, idempotent, ids in; they call a service and map errors to the retry policy.

Task names are a wire contract (Flower, the app backend, queued messages): never rename them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kombu.exceptions
import psycopg
import redis
from celery import Task

from autosync import metrics, retries
from autosync.celery import app
from autosync.providers.http import RequestStats, counting
from autosync.redact import describe
from autosync.services import runs
from autosync.services.context import context
from autosync.services.runs import Next

log = logging.getLogger("autosync.tasks")

QUEUES = {1: "autosync.google", 2: "autosync.outlook"}
PROVIDERS = {1: "google", 2: "outlook"}


class StepFailed(Exception):
    """A step ended its run as failed or needs_reauth, and recorded it: raised so the task is a FAILURE.

    Flower (its task list and /metrics) and any event consumer then see a task-failed event instead of
    a green success. It is raised after the run is closed, never retried (only ``task.retry`` retries
    a step) and acknowledged like any task failure (late acks requeue only when the worker process is
    lost). Its text is the run's stored error, already scrubbed of tokens and secrets.
    """


def label(step: Next) -> str:
    """How a step's arguments read in Flower and in worker logs: ``run=12 calendar=34 provider=google``."""
    parts = [f"run={step.run_id}"]
    if step.calendar_id is not None:
        parts.append(f"calendar={step.calendar_id}")
    if step.calendar_type in PROVIDERS:
        parts.append(f"provider={PROVIDERS[step.calendar_type or 0]}")
    if step.page_id is not None:
        parts.append(f"page={step.page_id}")
    return " ".join(parts)


def enqueue(step: Next, queue: str | None = None) -> None:
    """Send the task for a step, on its provider's queue, with readable arguments (ids only)."""
    if step.step == "done":
        return
    target = QUEUES.get(step.calendar_type or 0, queue or "autosync")
    task = {"token": refresh_token, "watch": watch_calendar, "fetch": fetch_page, "import": import_page,
            "push": push_changes}[step.step]
    args: tuple[Any, ...] = (step.run_id, step.page_id) if step.step == "import" else (step.run_id,)
    task.apply_async(args=args, queue=target, argsrepr=label(step), kwargsrepr="")


def _fail(run_id: int, outcome: str, error: str) -> StepFailed:
    """Close the run with its outcome (and start a requested rerun); returns what the step raises."""
    app = context()
    with app.store.unit() as tx:
        finished = runs.finish(tx, run_id, outcome, error[:2000])
    for step in runs.rerun_if_requested(app, finished):
        enqueue(step)
    return StepFailed(f"run {run_id} {outcome}: {error[:2000]}")


def run_step(task: Task, fn: Callable[..., Next], run_id: int, *args: Any) -> None:
    """Run one step, counting its provider requests even when it fails, then enqueue the next step."""
    queue = (task.request.delivery_info or {}).get("routing_key")
    stats = RequestStats()
    try:
        with counting() as stats:
            nxt = fn(context(), run_id, *args)
    except BaseException:
        _record_requests(run_id, stats)  # an attempt that failed still cost requests
        raise
    try:
        enqueue(nxt, queue)
    except (kombu.exceptions.OperationalError, redis.RedisError, OSError) as exc:
        # The step is done and its progress recorded with the run's next step; only the broker is
        # away. Failing the run here would lose its work, and retrying needs the broker too: the
        # stale-run sweep resumes the run from its recorded step once the broker is back.
        log.warning("next step not queued (broker away); the stale-run sweep resumes the run",
                    extra={"run": run_id, "step": nxt.step, "error": type(exc).__name__})


def _redeliveries(task: Task) -> int:
    """How often this attempt of the step came back because its worker process died (0: first delivery).

    A step killed by the hard time limit (or whose process keeps dying) is requeued by the broker
    (late acks, reject on worker lost); counted per task id and retry, in Redis, only on redelivery.
    """
    info = task.request.delivery_info or {}
    if not (info.get("redelivered") or (task.request.headers or {}).get("redelivered")):
        return 0
    key = f"autosync:redeliveries:{task.request.id}:{task.request.retries}"
    try:
        pipe = context().limiter.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 86400)
        return int(pipe.execute()[0])
    except redis.RedisError:
        return 0  # cannot count: let it run


def _guarded(task: Task, fn: Callable[..., Next], run_id: int, *args: Any) -> None:
    """The single retry policy around one step."""
    settings = context().settings
    again = _redeliveries(task)
    if again > settings.max_redeliveries:
        log.error("step given up after redeliveries", extra={"run": run_id, "task": task.name, "times": again})
        raise _fail(run_id, "failed", f"{task.name} was redelivered {again} times: its worker process died "
                                      "each time (the hard time limit, or memory) — given up so it cannot loop")
    try:
        run_step(task, fn, run_id, *args)
    except Exception as exc:
        verdict = retries.decide(exc, task.request.retries, max_retries=settings.task_retry_max,
                                 backoff_cap=settings.task_backoff_cap)
        # A retry is a new message: it keeps the readable arguments the first one was sent with.
        shown = {"argsrepr": task.request.get("argsrepr"), "kwargsrepr": task.request.get("kwargsrepr")}
        if isinstance(verdict, retries.Wait):  # our own cluster limiter: wait without holding a worker slot
            raise task.retry(countdown=verdict.delay, **shown) from None
        if isinstance(verdict, retries.Retry):
            log.info("step retry", extra={"run": run_id, "task": task.name, "error": _describe(exc)})
            raise task.retry(countdown=verdict.delay, **shown) from None
        if verdict.unexpected:
            log.exception("step crashed", extra={"run": run_id, "task": task.name})
        described = _describe(exc)
        if verdict.deactivate:
            with context().store.unit() as tx:
                tx.deactivate_calendar_of_run(run_id, described)
        raise _fail(run_id, verdict.outcome, verdict.message(described)) from None


def _record_requests(run_id: int, stats: RequestStats) -> None:
    """Best effort: the failure being handled matters more than this count."""
    if not stats.count:
        return
    try:
        with context().store.unit() as tx:
            tx.add_requests(run_id, stats.count)
    except psycopg.Error:
        log.warning("could not record provider requests", extra={"run": run_id, "requests": stats.count})


def _describe(exc: BaseException) -> str:
    """The error text stored on the run and the calendar, and logged: scrubbed of tokens and secrets."""
    return describe(exc, context().settings.secrets())


# ``throws``: a StepFailed is logged by the worker as an expected outcome (one line, no traceback);
# the run's own log line already says why.
STEP = {"bind": True, "acks_late": True, "ignore_result": True, "max_retries": None, "throws": (StepFailed,)}


@app.task(name="autosync.refresh_token", **STEP)
def refresh_token(self: Task, run_id: int) -> None:
    """Step 1: make sure the run's calendar has a usable access token."""
    from autosync.services.pull import token_step

    _guarded(self, token_step, run_id)


@app.task(name="autosync.watch_calendar", **STEP)
def watch_calendar(self: Task, run_id: int) -> None:
    """Step 1b (change notifications on): create or renew the calendar's channel before fetching."""
    from autosync.services.watch import watch_step

    _guarded(self, watch_step, run_id)


@app.task(name="autosync.fetch_page", **STEP)
def fetch_page(self: Task, run_id: int) -> None:
    """Step 2: fetch one page of changes and stage it."""
    from autosync.services.pull import fetch_step

    _guarded(self, fetch_step, run_id)


@app.task(name="autosync.import_page", **STEP)
def import_page(self: Task, run_id: int, page_id: int) -> None:
    """Steps 3 and 4: normalize a staged page and import it with its cursor."""
    from autosync.services.pull import import_step

    _guarded(self, import_step, run_id, page_id)


@app.task(name="autosync.push_changes", **STEP)
def push_changes(self: Task, run_id: int) -> None:
    """Step 5: push the app's changes for the run's calendar back to the provider."""
    from autosync.services.syncback import push_step

    _guarded(self, push_step, run_id)


@app.task(name="autosync.fan_out", bind=True, ignore_result=True)
def fan_out(self: Task, types: list[int] | None = None, interval: float | None = None) -> int:
    """Beat: open one run per active calendar that needs one, and stop channels nobody needs.

    The beat passes its ``interval``: then only one fan-out runs per interval, however many beats
    send it. Without it (an operator, a test, a benchmark) the fan-out always runs.
    """
    from autosync.services.watch import orphans

    if interval:
        claimed = runs.periodic_fan_out(context(), types or [1, 2], float(interval))
        if claimed is None:
            return 0
        steps = claimed
    else:
        steps, _ = runs.open_runs(context(), types or [1, 2], reason="beat")
    metrics.fanned_out(len(steps))
    for step in steps:
        enqueue(step)
    for channel_id in orphans():
        unwatch_channel.apply_async(args=(channel_id,), queue="autosync")
    return len(steps)


@app.task(name="autosync.unwatch_channel", bind=True, ignore_result=True, acks_late=True,
          autoretry_for=(psycopg.OperationalError, redis.RedisError), retry_backoff=True, max_retries=5)
def unwatch_channel(self: Task, channel_id: str) -> bool:
    """Stop a change-notification channel that no active calendar needs (unlinked or switched off)."""
    from autosync.services.watch import unwatch_orphan

    return unwatch_orphan(context(), channel_id)


@app.task(name="autosync.sync_user", bind=True, ignore_result=True)
def sync_user(self: Task, user_id: int | None, calendar_type: int | None = None,
              request_id: int | None = None, calendar_id: int | None = None,
              allow_mass_delete: bool = False, dry_run: bool = False) -> int:
    """Ad-hoc: sync one user's calendars (all users when user_id is None); ``dry_run`` only counts."""
    types = [calendar_type] if calendar_type else [1, 2]
    steps, _ = runs.open_runs(context(), types, reason="adhoc", user_id=user_id, request_id=request_id,
                              calendar_id=calendar_id, allow_mass_delete=allow_mass_delete, dry_run=dry_run)
    for step in steps:
        enqueue(step)
    return len(steps)


@app.task(name="autosync.resume_stale", bind=True, ignore_result=True)
def resume_stale(self: Task) -> int:
    """Beat: resume runs whose worker died mid-run."""
    steps = runs.resume_stale(context())
    for step in steps:
        enqueue(step)
    return len(steps)


@app.task(name="autosync.deliver_notifications", bind=True, ignore_result=True)
def deliver_notifications(self: Task) -> int:
    """Beat: hand pending user notifications to the configured sender."""
    from autosync.services.notices import deliver_pending

    return deliver_pending(context())


@app.task(name="autosync.changed", bind=True, ignore_result=True, acks_late=True,
          autoretry_for=(psycopg.OperationalError, redis.RedisError), retry_backoff=True, retry_backoff_max=60,
          max_retries=10)
def changed(self: Task, channel_id: str, event: str = "exists") -> int:
    """A verified change notification: sync the calendars its channel covers (ids only, never secrets)."""
    from autosync.services.watch import on_notification

    steps = on_notification(context(), channel_id, event)
    for step in steps:
        enqueue(step)
    return len(steps)
