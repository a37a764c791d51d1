"""SQL for health checks: a bounded connection probe and the beat's last fan-out."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

FAN_OUT_STATE = (
    'SELECT scope, "lastAt", "lastRuns", "interval", duplicates, "lastDuplicateAt", '
    'extract(epoch FROM now() - "lastAt") AS age, '
    'extract(epoch FROM now() - "lastDuplicateAt") AS duplicate_age FROM fan_out ORDER BY "lastAt" DESC'
)


def probe(url: str, timeout: float) -> None:
    """Open a connection (giving up after ``timeout`` seconds) and run one query; raises psycopg errors."""
    with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
        conn.execute("SELECT 1")


def fan_out_state(url: str, timeout: float) -> list[dict[str, Any]]:
    """The recorded fan-outs, newest first, read on a connection of its own."""
    with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True,
                         row_factory=dict_row) as conn:
        return conn.execute(FAN_OUT_STATE).fetchall()
