"""Settings: the one place that reads the environment, into one frozen, validated object."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from autosync.errors import ConfigError


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that must send it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ConfigError(f"{name} must be a {'/'.join(schemes)} URL")
        return raw.rstrip("/") if parts.scheme.startswith("http") else raw

    return parse


def _http_url(name: str, raw: str) -> str:
    return _url(("http", "https"))(name, raw)


def _number(kind: type, minimum: float, maximum: float | None = None) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
        # nan compares false with every bound, so it would pass the check below (and disable a guard).
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
            raise ConfigError(f"{name} must be {bound}, got {raw!r}")
        return value

    return parse


def finite_float(raw: str) -> float:
    """argparse type: a finite number (float() alone accepts "nan" and "inf")."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {raw!r}")
    return value


def seconds(raw: str) -> float:
    """argparse type: a finite, non-negative number of seconds."""
    value = finite_float(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {raw!r}")
    return value


def _optional_http_url(name: str, raw: str) -> str:
    return _http_url(name, raw) if raw.strip() else ""


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _webhook_url(name: str, raw: str) -> str:
    """The receiver's public base: HTTPS, because both providers deliver only to HTTPS addresses.

    Google refuses an events.watch address that is not HTTPS with a valid certificate
    (https://developers.google.com/workspace/calendar/api/guides/push), and Graph requires an HTTPS
    notificationUrl (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks). So a
    plain-http URL could only ever yield failed watches; it is refused here, except on loopback,
    where the emulator (tests, `autosync run --demo --webhooks`) delivers over plain HTTP.
    """
    url = _optional_http_url(name, raw)
    if url and urlsplit(url).scheme != "https" and (urlsplit(url).hostname or "") not in LOOPBACK_HOSTS:
        raise ConfigError(f"{name} must be an https:// URL (plain http:// is only allowed on loopback: "
                          f"{', '.join(sorted(LOOPBACK_HOSTS))}), got {mask_url(url)!r}")
    return url


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {raw!r}")


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if raw not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {raw!r}")
        return raw

    return parse


def _rate(name: str, raw: str) -> tuple[int, float]:
    """'N/S' requests per S seconds, e.g. '600/60'; '0' disables the limit."""
    if raw.strip() in {"0", ""}:
        return (0, 1.0)
    try:
        count, _, per = raw.partition("/")
        value = (int(count), float(per or "1"))
    except ValueError:
        raise ConfigError(f"{name} must look like COUNT/SECONDS (e.g. 600/60), got {raw!r}") from None
    if value[0] < 0 or not math.isfinite(value[1]) or value[1] <= 0:
        raise ConfigError(f"{name} must have COUNT >= 0 and SECONDS > 0, got {raw!r}")
    return value


def _secret(name: str, raw: str) -> Secret:
    return Secret(raw)


def _text(name: str, raw: str) -> str:
    return raw


def _fernet_keys(name: str, raw: str) -> tuple[Secret, ...]:
    """Comma-separated Fernet keys; an invalid one stops start-up naming the variable, never the key."""
    from cryptography.fernet import Fernet

    keys = [k.strip() for k in raw.split(",") if k.strip()]
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(f"{name}: key {position} of {len(keys)} is not a Fernet key (32 url-safe "
                              "base64-encoded bytes; `autosync tokens new-key` prints one)") from None
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{name}: the same key is listed twice")
    return tuple(Secret(k) for k in keys)


def mask_url(value: str) -> str:
    """A URL with its password replaced by ***, for reprs and logs."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", value)


def env(name: str, default: str, parse: Callable[[str, str], Any] = _text) -> Any:
    """Declare a settings field read from environment variable ``name``."""
    return field(default=None, metadata={"env": name, "default": default, "parse": parse})


@dataclass(frozen=True)
class Settings:
    """Every setting autosync has; the environment variable names are a public contract."""

    database_url: str = env("AUTOSYNC_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/autosync",
                            _url(("postgresql", "postgres")))
    broker_url: str = env("AUTOSYNC_BROKER_URL", "redis://127.0.0.1:6379/0",
                          _url(("redis", "rediss", "redis+socket")))
    redis_url: str = env("AUTOSYNC_REDIS_URL", "", _text)  # rate limits/locks; default: the broker
    google_client_id: str = env("MIPLANIT_GOOGLE_CLIENT_ID", "")
    google_client_secret: Secret = env("MIPLANIT_GOOGLE_CLIENT_SECRET", "", _secret)
    outlook_client_id: str = env("MIPLANIT_OUTLOOK_CLIENT_ID", "")
    outlook_client_secret: Secret = env("MIPLANIT_OUTLOOK_CLIENT_SECRET", "", _secret)
    outlook_scope: str = env("MIPLANIT_OUTLOOK_SCOPE",
                             "offline_access https://graph.microsoft.com/Calendars.ReadWrite")
    google_token_url: str = env("AUTOSYNC_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token",
                                _http_url)
    google_api_url: str = env("AUTOSYNC_GOOGLE_API_URL", "https://www.googleapis.com/calendar/v3",
                              _http_url)
    outlook_token_url: str = env("AUTOSYNC_OUTLOOK_TOKEN_URL",
                                 "https://login.microsoftonline.com/common/oauth2/v2.0/token", _http_url)
    graph_api_url: str = env("AUTOSYNC_GRAPH_API_URL", "https://graph.microsoft.com/v1.0", _http_url)
    sync_interval: int = env("AUTOSYNC_SYNC_INTERVAL", "300", _number(int, 1))
    sync_past_days: int = env("AUTOSYNC_SYNC_PAST_DAYS", "28", _number(int, 0, 3650))
    sync_future_days: int = env("AUTOSYNC_SYNC_FUTURE_DAYS", "365", _number(int, 1, 3650))
    window_roll_days: int = env("AUTOSYNC_WINDOW_ROLL_DAYS", "7", _number(int, 1, 365))
    token_refresh_margin: int = env("AUTOSYNC_TOKEN_REFRESH_MARGIN", "225", _number(int, 0, 3600))
    http_connect_timeout: float = env("AUTOSYNC_HTTP_CONNECT_TIMEOUT", "5", _number(float, 0.05, 120))
    http_read_timeout: float = env("AUTOSYNC_HTTP_READ_TIMEOUT", "30", _number(float, 0.05, 600))
    http_retries: int = env("AUTOSYNC_HTTP_RETRIES", "3", _number(int, 0, 10))
    http_backoff_cap: float = env("AUTOSYNC_HTTP_BACKOFF_CAP", "8", _number(float, 0, 120))
    google_page_size: int = env("AUTOSYNC_GOOGLE_PAGE_SIZE", "2500", _number(int, 1, 2500))
    outlook_page_size: int = env("AUTOSYNC_OUTLOOK_PAGE_SIZE", "1000", _number(int, 1, 1000))
    # A full listing (first link, invalid cursor, window roll) handles up to this many pages, or this
    # many seconds (and never more than a third of the soft time limit), per task: services/initial.py.
    full_sync_step_pages: int = env("AUTOSYNC_FULL_SYNC_STEP_PAGES", "40", _number(int, 1, 1000))
    # A full Outlook round's series, reconciled on its last page this many per transaction (memory).
    full_sync_series_per_part: int = env("AUTOSYNC_FULL_SYNC_SERIES_PER_PART", "250", _number(int, 1, 10000))
    full_sync_step_seconds: float = env("AUTOSYNC_FULL_SYNC_STEP_SECONDS", "20", _number(float, 0.1, 3600))
    google_rate: tuple[int, float] = env("AUTOSYNC_GOOGLE_RATE", "10000/60", _rate)
    google_account_rate: tuple[int, float] = env("AUTOSYNC_GOOGLE_ACCOUNT_RATE", "600/60", _rate)
    outlook_rate: tuple[int, float] = env("AUTOSYNC_OUTLOOK_RATE", "2000/1", _rate)
    outlook_account_rate: tuple[int, float] = env("AUTOSYNC_OUTLOOK_ACCOUNT_RATE", "10000/600", _rate)
    outlook_mailbox_concurrency: int = env("AUTOSYNC_OUTLOOK_MAILBOX_CONCURRENCY", "4", _number(int, 1, 64))
    max_inline_wait: float = env("AUTOSYNC_MAX_INLINE_WAIT", "2", _number(float, 0, 30))
    task_retry_max: int = env("AUTOSYNC_TASK_RETRY_MAX", "8", _number(int, 0, 100))
    task_backoff_cap: int = env("AUTOSYNC_TASK_BACKOFF_CAP", "600", _number(int, 1, 86400))
    task_soft_time_limit: int = env("AUTOSYNC_TASK_SOFT_TIME_LIMIT", "120", _number(int, 1, 86400))
    task_time_limit: int = env("AUTOSYNC_TASK_TIME_LIMIT", "150", _number(int, 1, 86400))
    run_stale_after: int = env("AUTOSYNC_RUN_STALE_AFTER", "900", _number(int, 10, 86400))
    max_redeliveries: int = env("AUTOSYNC_MAX_REDELIVERIES", "3", _number(int, 1, 100))
    handle_wait: float = env("AUTOSYNC_HANDLE_WAIT", "60", _number(float, 0, 3600))
    send_updates: str = env("AUTOSYNC_SEND_UPDATES", "none", _choice("none", "externalOnly", "all"))
    conflict_policy: str = env("AUTOSYNC_CONFLICT_POLICY", "latest",
                               _choice("latest", "provider", "app"))
    mass_delete_ratio: float = env("AUTOSYNC_MASS_DELETE_RATIO", "0.5", _number(float, 0, 1))
    mass_delete_min: int = env("AUTOSYNC_MASS_DELETE_MIN", "10", _number(int, 0))
    # The worker pool: threads (default; I/O-bound steps wait on providers side by side) or prefork
    # (one step per process, with Celery's time limits). See autosync/workers.py and BENCHMARKS.md.
    worker_pool: str = env("AUTOSYNC_WORKER_POOL", "threads", _choice("threads", "prefork"))
    worker_concurrency: int = env("AUTOSYNC_WORKER_CONCURRENCY", "0", _number(int, 0, 1024))  # 0: per pool
    worker_processes: int = env("AUTOSYNC_WORKER_PROCESSES", "0", _number(int, 0, 256))  # 0: two per core
    db_pool_size: int = env("AUTOSYNC_DB_POOL_SIZE", "16", _number(int, 1, 1000))  # per worker process
    worker_max_tasks_per_child: int = env("AUTOSYNC_WORKER_MAX_TASKS_PER_CHILD", "1000", _number(int, 1))
    worker_max_memory_per_child: int = env("AUTOSYNC_WORKER_MAX_MEMORY_PER_CHILD", "300000",
                                           _number(int, 1000))  # KiB
    # Touched every few seconds while a worker consumes; `autosync health worker` checks its age.
    worker_liveness_file: str = env("AUTOSYNC_WORKER_LIVENESS_FILE", "/tmp/autosync-worker.alive")  # noqa: S108
    notification_channel: str = env("AUTOSYNC_NOTIFICATION_CHANNEL", "autosync:notifications")
    notification_sender: str = env("AUTOSYNC_NOTIFICATION_SENDER", "redis", _choice("redis", "log"))
    log_level: str = env("AUTOSYNC_LOG_LEVEL", "INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR"))
    data_dir: str = env("AUTOSYNC_DATA_DIR", "")  # holds `autosync run`'s own autosync/ directory; default per user
    # Change notifications (Google watch channels, Graph subscriptions); off while the URL is empty.
    webhook_url: str = env("AUTOSYNC_WEBHOOK_URL", "", _webhook_url)  # public base of `autosync webhooks`
    webhook_host: str = env("AUTOSYNC_WEBHOOK_HOST", "127.0.0.1")
    webhook_port: int = env("AUTOSYNC_WEBHOOK_PORT", "8470", _number(int, 0, 65535))
    # What one client may cost the receiver (it is on the open internet): see autosync/webserver.py.
    webhook_max_connections: int = env("AUTOSYNC_WEBHOOK_MAX_CONNECTIONS", "4000", _number(int, 1, 60000))
    webhook_header_timeout: float = env("AUTOSYNC_WEBHOOK_HEADER_TIMEOUT", "10", _number(float, 0.5, 300))
    webhook_body_timeout: float = env("AUTOSYNC_WEBHOOK_BODY_TIMEOUT", "10", _number(float, 0.5, 300))
    webhook_threads: int = env("AUTOSYNC_WEBHOOK_THREADS", "8", _number(int, 1, 256))
    watch_ttl: int = env("AUTOSYNC_WATCH_TTL", "252000", _number(int, 600, 604800))  # 70 h: under Graph's 4,230 min
    watch_renew_before: int = env("AUTOSYNC_WATCH_RENEW_BEFORE", "86400", _number(int, 60, 604800))
    watch_safety_poll: int = env("AUTOSYNC_WATCH_SAFETY_POLL", "21600", _number(int, 60))
    # OAuth tokens at rest: the first key seals what autosync writes, every key opens (store/sealed.py).
    token_keys: tuple[Secret, ...] = env("AUTOSYNC_TOKEN_KEYS", "", _fernet_keys)
    # Flower (`autosync flower`, `autosync run --flower`) never starts without one of these two; the
    # names are Flower's own, which Flower also reads itself.
    flower_basic_auth: Secret = env("FLOWER_BASIC_AUTH", "", _secret)  # user:password[,user:password]
    flower_oauth: str = env("FLOWER_AUTH", "")  # Flower's OAuth e-mail pattern (with FLOWER_AUTH_PROVIDER…)
    flower_address: str = env("FLOWER_ADDRESS", "127.0.0.1")
    flower_port: int = env("FLOWER_PORT", "5555", _number(int, 1, 65535))
    # `autosync metrics`: the Prometheus endpoint (loopback unless told otherwise).
    metrics_host: str = env("AUTOSYNC_METRICS_HOST", "127.0.0.1")
    metrics_port: int = env("AUTOSYNC_METRICS_PORT", "8471", _number(int, 0, 65535))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raises ConfigError naming the bad variable."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            meta = f.metadata
            raw = source.get(meta["env"], meta["default"])
            values[f.name] = meta["parse"](meta["env"], raw)
        settings = cls(**values)
        if settings.task_time_limit <= settings.task_soft_time_limit:
            raise ConfigError("AUTOSYNC_TASK_TIME_LIMIT must be greater than AUTOSYNC_TASK_SOFT_TIME_LIMIT")
        if settings.watch_renew_before >= settings.watch_ttl:
            raise ConfigError("AUTOSYNC_WATCH_RENEW_BEFORE must be less than AUTOSYNC_WATCH_TTL")
        return settings

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown.append(f"{f.name}={mask_url(value)!r}" if isinstance(value, str) else f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def watch_enabled(self) -> bool:
        """Whether calendars are watched through change notifications (a webhook URL is set)."""
        return bool(self.webhook_url)

    @property
    def redis(self) -> str:
        """The Redis URL for limits and locks (the broker's unless set)."""
        return self.redis_url or self.broker_redis_url

    @property
    def broker_redis_url(self) -> str:
        """The broker's URL as redis-py spells it (for a direct PING or LPUSH to the broker's Redis)."""
        # Kombu's Unix-socket scheme; redis-py spells the same socket unix://.
        if self.broker_url.startswith("redis+socket://"):
            return "unix://" + self.broker_url[len("redis+socket://"):]
        return self.broker_url

    def secrets(self) -> list[str]:
        """Configured secret values, so log filters can scrub them."""
        found = [s.reveal() for s in (self.google_client_secret, self.outlook_client_secret, *self.token_keys) if s]
        for entry in self.flower_basic_auth.reveal().split(","):
            password = entry.partition(":")[2]
            if password:
                found.append(password)
        return found


def is_set(name: str) -> bool:
    """Whether an environment variable is explicitly set (`autosync run` picks services by it)."""
    return bool(os.environ.get(name))


def process_environment() -> dict[str, str]:
    """A copy of the environment, for the child processes `autosync run` starts."""
    return dict(os.environ)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
