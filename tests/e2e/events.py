"""A real Celery event receiver on the test broker: what Flower would see, captured for assertions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Captured:
    """Task events received so far, by task id."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, task_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("uuid") == task_id]

    def task_ids(self, name: str, args: str) -> list[str]:
        """Ids of the tasks received with this name and these readable arguments (argsrepr)."""
        with self.lock:
            return [e["uuid"] for e in self.events
                    if e["type"] == "task-received" and e.get("name") == name and e.get("args") == args]

    def final(self, task_id: str, timeout: float = 30) -> str:
        """The task's last event type once it succeeded or failed (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kinds = [e["type"] for e in self.of(task_id)]
            if "task-succeeded" in kinds or "task-failed" in kinds:
                return kinds[-1]
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} did not finish: {[e['type'] for e in self.of(task_id)]}")


@contextmanager
def celery_events(app: Any) -> Iterator[Captured]:
    """Receive the broker's task events while the block runs (subscribed before it starts)."""
    captured = Captured()
    ready = threading.Event()
    marker = f"autosync-test-{uuid.uuid4().hex}"

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == marker:
            ready.set()
        elif str(event.get("type", "")).startswith("task-"):
            captured.add(event)

    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": on_event})
        thread = threading.Thread(target=receiver.capture, kwargs={"limit": None, "timeout": None, "wakeup": False},
                                  daemon=True)
        thread.start()
        with app.events.default_dispatcher() as dispatcher:
            deadline = time.monotonic() + 10
            while not ready.wait(0.2):  # a pub/sub subscription only sees what is sent after it exists
                assert time.monotonic() < deadline, "the event receiver did not subscribe"
                dispatcher.send(marker)
        try:
            yield captured
        finally:
            receiver.should_stop = True
            thread.join(5)
