"""Celery settings for autosync, built from the one Settings object (lowercase Celery names)."""

from __future__ import annotations

from kombu import Exchange, Queue

from autosync import workers as _workers
from autosync.settings import get_settings

_s = get_settings()

broker_url = _s.broker_url
broker_connection_retry_on_startup = True
broker_transport_options = {
    "visibility_timeout": max(3600, _s.task_time_limit * 4),  # unacked tasks come back after this
    "health_check_interval": 30,
    "socket_keepalive": True,
    "socket_timeout": 30,
    "socket_connect_timeout": 10,
    "retry_on_timeout": True,
}
broker_heartbeat = 30
redis_socket_keepalive = True
redis_backend_health_check_interval = 30

# No result backend: runs are recorded in PostgreSQL (sync_run), which is what callers poll.
result_backend = None
task_ignore_result = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# Flower needs events.
worker_send_task_events = True
task_send_sent_event = True

# A task is acknowledged after it ran, one message at a time per process, so a killed worker's
# step is redelivered; every step is idempotent.
task_acks_late = True
task_reject_on_worker_lost = True
# A step that raises (StepFailed: its run was recorded as failed) is acknowledged, never redelivered:
# only a lost worker process requeues its message.
task_acks_on_failure = True
worker_prefetch_multiplier = 1
task_soft_time_limit = _s.task_soft_time_limit
task_time_limit = _s.task_time_limit
worker_max_tasks_per_child = _s.worker_max_tasks_per_child
worker_max_memory_per_child = _s.worker_max_memory_per_child
worker_cancel_long_running_tasks_on_connection_loss = True
# `autosync worker` runs the host's workers: one I/O-pool process per core (threads by default; see
# autosync/workers.py), each started with an explicit -P and -c. The pool is deliberately NOT set
# here: Celery lets a configured worker_pool override an explicit `-P prefork`, and prefork is what a
# plain `celery -A autosync worker` runs. Task time limits are enforced by the prefork and gevent
# pools only; under threads every provider call is bounded by the HTTP timeouts and every in-task
# wait by AUTOSYNC_MAX_INLINE_WAIT, and a run that stalls anyway is resumed after
# AUTOSYNC_RUN_STALE_AFTER.
if _s.worker_concurrency:
    worker_concurrency = _s.worker_concurrency
# Every thread may publish its next step at once: a producer (and broker connection) each, so none
# waits for another's (kombu blocks on an exhausted pool).
broker_pool_limit = max(10, _workers.concurrency(_s) + 2)

QUEUE_DEFAULT = "autosync"
QUEUE_GOOGLE = "autosync.google"
QUEUE_OUTLOOK = "autosync.outlook"
task_default_queue = QUEUE_DEFAULT
_exchange = Exchange("autosync", type="direct")
task_queues = (
    Queue(QUEUE_DEFAULT, _exchange, routing_key=QUEUE_DEFAULT),
    Queue(QUEUE_GOOGLE, _exchange, routing_key=QUEUE_GOOGLE),
    Queue(QUEUE_OUTLOOK, _exchange, routing_key=QUEUE_OUTLOOK),
)
task_default_exchange = "autosync"
task_default_routing_key = QUEUE_DEFAULT

beat_schedule = {
    # The interval lets the task skip a fan-out that a second beat already ran in this interval.
    "fan-out": {"task": "autosync.fan_out", "schedule": float(_s.sync_interval), "args": ([1, 2],),
                "kwargs": {"interval": _s.sync_interval}},
    # Often enough that a run left by a killed worker or a lost broker message resumes within about
    # AUTOSYNC_RUN_STALE_AFTER and a half (at most a minute apart; the sweep is one indexed query).
    "resume-stale-runs": {"task": "autosync.resume_stale", "schedule": min(60.0, max(5.0, _s.run_stale_after / 2))},
    "deliver-notifications": {"task": "autosync.deliver_notifications", "schedule": 10.0},
}
