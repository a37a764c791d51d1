"""The emulator's request log: what clients sent to the provider routes (admin calls are not logged)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs


class EntryLog:
    """A thread-safe, append-only list of dict entries (the request log, the push delivery log)."""

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def _select(self, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries if keep(e)]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


class RequestLog(EntryLog):
    """Append-only list of provider requests, filterable by account, provider and endpoint prefix."""

    def record(
        self,
        *,
        provider: str,
        endpoint: str,
        method: str,
        path: str,
        raw_query: str,
        status: int | None,
        account: str | None,
        calendar: str | None,
        headers: Mapping[str, str],
        fault: str | None = None,
        received: float | None = None,
    ) -> None:
        """Append one request; ``received`` is when it arrived, ``time`` when it was answered."""
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        entry = {
            "provider": provider,
            "endpoint": endpoint,
            "method": method,
            "path": path,
            "query": query,
            "raw_query": raw_query,
            "status": status,
            "account": account,
            "calendar": calendar,
            "headers": header_subset(headers),
            "fault": fault,
            "time": time.time(),
            "received": received if received is not None else time.time(),
        }
        self._append(entry)

    def query(
        self, account: str | None = None, provider: str | None = None, endpoint: str | None = None
    ) -> dict[str, Any]:
        """`{"total", "by_endpoint", "requests"}` for the matching entries."""
        rows = self._select(
            lambda e: (not account or e["account"] == account)
            and (not provider or e["provider"] == provider)
            and (not endpoint or e["endpoint"].startswith(endpoint))
        )
        by_endpoint: dict[str, int] = {}
        for row in rows:
            by_endpoint[row["endpoint"]] = by_endpoint.get(row["endpoint"], 0) + 1
        return {"total": len(rows), "by_endpoint": by_endpoint, "requests": rows}


def header_subset(headers: Mapping[str, str]) -> dict[str, Any]:
    """Prefer / If-Match / Content-Type as sent, plus whether an Authorization header was present."""
    out: dict[str, Any] = {}
    get_all = getattr(headers, "get_all", None)
    for name in ("Prefer", "If-Match", "Content-Type"):
        values = get_all(name) if get_all else ([headers[name]] if name in headers else None)
        if values:
            out[name] = ", ".join(values)
    out["authorization_present"] = bool(headers.get("Authorization"))
    return out
