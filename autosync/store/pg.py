"""The PostgreSQL store: every statement the run steps execute, and its parameter names, behind `Tx`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import date, datetime
from typing import Any

from autosync.model import AppChange, Event, Skipped
from autosync.store import channels as watch_sql
from autosync.store import conflicts as conflict_sql
from autosync.store import events as ev_sql
from autosync.store import leases as lease_sql
from autosync.store import notices as notice_sql
from autosync.store import outbox as out_sql
from autosync.store import runs as run_sql
from autosync.store import tokens as token_sql
from autosync.store.db import Conn, connect, ping, transaction
from autosync.store.events import Encoded, Upserted
from autosync.store.runs import RunContext
from autosync.store.sealed import Sealer
from autosync.store.status import STATUS

Row = dict[str, Any]


class PgTx:
    """One transaction on a pooled connection; each method is one named statement (or a few)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def rollback_after(self, dry: bool) -> AbstractContextManager[Any]:
        """A savepoint rolled back at its end when ``dry`` (a dry run); nothing at all otherwise."""
        return self.conn.transaction(force_rollback=True) if dry else nullcontext()

    # --- runs ---------------------------------------------------------------------------------------

    def run_context(self, run_id: int) -> RunContext | None:
        return run_sql.run_context(self.conn, run_id)

    def due(self, types: Sequence[int], *, user_id: int | None, calendar_ids: Sequence[int] | None, push: bool,
            quiet: bool, renew_before: int, safety_poll: int) -> list[Row]:
        return run_sql.select_due(self.conn, types, user_id=user_id, calendar_ids=calendar_ids, push=push,
                                  quiet=quiet, renew_before=renew_before, safety_poll=safety_poll)

    def start_runs(self, calendar_ids: Sequence[int], *, reason: str, request_id: int | None, rerun: bool,
                   coalesce: bool) -> tuple[list[Row], list[Row]]:
        return run_sql.start_runs(self.conn, calendar_ids, reason=reason, request_id=request_id, rerun=rerun,
                                  coalesce=coalesce)

    def mark_dry_run(self, run_ids: list[int]) -> None:
        self.conn.execute(run_sql.MARK_DRY_RUN, {"run_ids": run_ids})

    def allow_mass_delete(self, calendar_ids: list[int]) -> None:
        self.conn.execute(run_sql.ALLOW_MASS_DELETE, {"c": calendar_ids})

    def set_request_pending(self, request_id: int, pending: int) -> None:
        self.conn.execute(run_sql.SET_REQUEST_PENDING, {"request_id": request_id, "pending": pending})

    def claim_fan_out(self, scope: str, interval: float) -> float | None:
        return run_sql.claim_fan_out(self.conn, scope, interval)

    def fan_out_runs(self, scope: str, runs: int) -> None:
        self.conn.execute(run_sql.FAN_OUT_RUNS, {"scope": scope, "runs": runs})

    def stale_runs(self, stale_after: int) -> list[Row]:
        return run_sql.stale_runs(self.conn, stale_after)

    def first_staged_page(self, run_id: int) -> int | None:
        row = self.conn.execute(run_sql.FIRST_STAGED_PAGE, {"run_id": run_id}).fetchone()
        return int(row["pageId"]) if row else None

    def touch(self, run_id: int, step: str, requests: int = 0) -> None:
        run_sql.touch(self.conn, run_id, step, requests)

    def progress(self, run_id: int, step: str, cursor: str | None, requests: int, counts: dict[str, int]) -> None:
        self.conn.execute(run_sql.PROGRESS, {"run_id": run_id, "step": step, "cursor": cursor,
                                             "requests": requests, **counts})

    def finish_run(self, run_id: int, outcome: str, error: str | None, requests: int,
                   counts: dict[str, int]) -> Row | None:
        return self.conn.execute(run_sql.FINISH_RUN, {"run_id": run_id, "outcome": outcome, "error": error,
                                                      "requests": requests, **counts}).fetchone()

    def add_requests(self, run_id: int, n: int) -> None:
        self.conn.execute(run_sql.ADD_REQUESTS, {"n": n, "run_id": run_id})

    def deactivate_calendar_of_run(self, run_id: int, reason: str) -> None:
        self.conn.execute(run_sql.DEACTIVATE_CALENDAR_OF_RUN, {"reason": reason, "run_id": run_id})

    def clean_run(self, run_id: int) -> None:
        self.conn.execute(run_sql.CLEAN_SEEN, {"run_id": run_id})
        self.conn.execute(run_sql.CLEAN_PAGES, {"run_id": run_id})

    def settle_requests(self, request_ids: list[int], failed: bool) -> list[Row]:
        return self.conn.execute(run_sql.REQUEST_DONE, {"ids": request_ids, "failed": int(failed)}).fetchall()

    def notify(self, user_id: int, kind: str, payload: dict[str, Any]) -> None:
        run_sql.notify(self.conn, user_id, kind, payload)

    def start_rerun(self, calendar_id: int, request_ids: list[int]) -> Row | None:
        return self.conn.execute(run_sql.START_RERUN, {"c": calendar_id, "r": request_ids}).fetchone()

    def begin_full(self, run_id: int, window: tuple[datetime, datetime]) -> bool:
        row = self.conn.execute(run_sql.START_FULL_SYNC, {"run_id": run_id, "window_start": window[0],
                                                          "window_end": window[1]}).fetchone()
        self.conn.execute(run_sql.CLEAN_SEEN, {"run_id": run_id})
        return bool(row and row["emptyAtStart"])

    def claim_cursor(self, run_id: int, cursor: str | None) -> bool:
        return run_sql.claim_cursor(self.conn, run_id, cursor)

    def bump_pages(self, run_id: int, n: int) -> None:
        self.conn.execute(run_sql.BUMP_PAGES, {"run_id": run_id, "n": n})

    def outlook_state(self, calendar_id: int, run_id: int, named: Sequence[str], removed: Sequence[str],
                      final: bool) -> dict[str, Any]:
        return ev_sql.outlook_state(self.conn, calendar_id, run_id, named, removed, final)

    def record_series_listed(self, run_id: int, listed: dict[str, dict[str, Any]]) -> None:
        run_sql.record_series_listed(self.conn, run_id, listed)

    def series_masters(self, run_id: int) -> list[str]:
        return run_sql.series_masters(self.conn, run_id)

    def series_listed(self, run_id: int, masters: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return run_sql.series_listed(self.conn, run_id, masters)

    def drop_cursor(self, calendar_id: int) -> None:
        self.conn.execute(run_sql.DROP_CURSOR, {"calendar_id": calendar_id})

    def commit_cursor(self, calendar_id: int, cursor: str, window: tuple[datetime | None, datetime | None]) -> None:
        run_sql.commit_cursor(self.conn, calendar_id, cursor, window)

    def stage_page(self, run_id: int, body: dict[str, Any], next_cursor: str | None, final: bool) -> int | None:
        return run_sql.stage_page(self.conn, run_id, body, next_cursor, final)

    def load_page(self, run_id: int, page_id: int) -> Row | None:
        return self.conn.execute(run_sql.LOAD_PAGE, {"page_id": page_id, "run_id": run_id}).fetchone()

    def load_outlook_page(self, calendar_id: int, run_id: int, page_id: int) -> Row | None:
        return ev_sql.load_outlook_page(self.conn, calendar_id, run_id, page_id)

    def drop_page(self, page_id: int) -> bool:
        return self.conn.execute(run_sql.DROP_PAGE, {"page_id": page_id}).fetchone() is not None

    def push_due(self, calendar_id: int) -> bool:
        return self.conn.execute(run_sql.PUSH_DUE, {"c": calendar_id}).fetchone() is not None

    def watch_due(self, calendar_id: int, renew_before: int) -> bool:
        return watch_sql.watch_due(self.conn, calendar_id, renew_before)

    def add_push_counts(self, run_id: int, counts: dict[str, int]) -> None:
        self.conn.execute(run_sql.ADD_PUSH_COUNTS, {**counts, "run_id": run_id})

    def record_skips(self, run_id: int, calendar_id: int, skipped: Sequence[Skipped]) -> None:
        run_sql.record_skips(self.conn, run_id, calendar_id, skipped)

    def claim_notices(self, limit: int) -> list[Row]:
        return self.conn.execute(notice_sql.CLAIM, {"limit": limit}).fetchall()

    def notices_sent(self, ids: list[int], *, delivered: bool) -> None:
        if ids:
            self.conn.execute(notice_sql.DELIVERED if delivered else notice_sql.FAILED, {"ids": ids})

    def claim_lease(self, key: str, holder: str, ttl: float) -> bool:
        return lease_sql.claim(self.conn, key, holder, ttl)

    def release_lease(self, key: str, holder: str) -> None:
        lease_sql.release(self.conn, key, holder)

    def read_token(self, calendar_id: int) -> Row:
        return token_sql.read_token(self.conn, calendar_id)

    def save_token(self, run: RunContext, token: str, expires: datetime, refresh: str | None) -> None:
        token_sql.save_token(self.conn, run, token, expires, refresh)

    def mark_needs_reauth(self, run: RunContext, reason: str) -> list[int]:
        return token_sql.mark_needs_reauth(self.conn, run, reason)

    # --- change-notification channels --------------------------------------------------------------

    def set_watch_error(self, calendar_id: int, error: str | None, *, lasting: bool = False) -> None:
        watch_sql.set_watch_error(self.conn, calendar_id, error, lasting=lasting)

    def live_channels(self, calendar_id: int) -> list[Row]:
        return watch_sql.live_for_calendar(self.conn, calendar_id)

    def stop_channels(self, channel_ids: list[str]) -> None:
        watch_sql.stop(self.conn, channel_ids)

    def channel_renewed(self, channel_id: str, expires: datetime) -> None:
        watch_sql.renewed(self.conn, channel_id, expires)

    def add_channel(self, run: RunContext, *, channel_id: str, calendar_id: int | None, resource_id: str | None,
                    secret_hash: bytes, expires: datetime) -> None:
        watch_sql.insert(self.conn, run, channel_id=channel_id, calendar_id=calendar_id, resource_id=resource_id,
                         secret_hash=secret_hash, expires=expires)

    def channel_due_now(self, channel_id: str) -> None:
        watch_sql.due_now(self.conn, channel_id)

    def calendars_of_channel(self, channel_id: str) -> list[int]:
        return [r["calendarId"] for r in watch_sql.calendars_of(self.conn, channel_id)]

    def orphaned_channels(self, channel_id: str | None = None) -> list[Row]:
        return watch_sql.orphaned(self.conn, channel_id)

    # --- events -------------------------------------------------------------------------------------

    def record_seen(self, run_id: int, ext_ids: Sequence[str]) -> None:
        ev_sql.record_seen(self.conn, run_id, ext_ids)

    def stale_instances(self, calendar_id: int, master_id: str, keep: Sequence[str]) -> list[str]:
        return ev_sql.stale_instances(self.conn, calendar_id, master_id, keep)

    def unseen(self, calendar_id: int, run_id: int, since: date) -> list[str]:
        return ev_sql.unseen(self.conn, calendar_id, run_id, since)

    def take_pending_deletes(self, run_id: int) -> list[str]:
        return ev_sql.take_pending_deletes(self.conn, run_id)

    def pend_deletes(self, run_id: int, ext_ids: Sequence[str]) -> None:
        ev_sql.pend_deletes(self.conn, run_id, ext_ids)

    def unpend_deletes(self, run_id: int, ext_ids: Sequence[str]) -> None:
        ev_sql.unpend_deletes(self.conn, run_id, ext_ids)

    def count_deletable(self, calendar_id: int, ext_ids: Sequence[str]) -> int:
        return ev_sql.count_deletable(self.conn, calendar_id, ext_ids)

    def count_live(self, calendar_id: int) -> int:
        return ev_sql.count_live(self.conn, calendar_id)

    def upsert(self, calendar_id: int, user_id: int, events: Sequence[Event],
               encoded: Encoded | None = None, *, fresh: bool = False) -> Upserted:
        return ev_sql.upsert(self.conn, calendar_id, user_id, events, encoded, fresh=fresh)

    def cancel_instances(self, calendar_id: int, user_id: int, events: Sequence[Event]) -> int:
        return ev_sql.cancel_instances(self.conn, calendar_id, user_id, events)

    def delete_events(self, calendar_id: int, ext_ids: Sequence[str]) -> int:
        return ev_sql.delete(self.conn, calendar_id, ext_ids)

    def drop_hints(self, calendar_id: int, ext_ids: list[str]) -> None:
        watch_sql.drop_hints(self.conn, calendar_id, ext_ids)

    # --- conflicts ----------------------------------------------------------------------------------

    def app_changes(self, calendar_id: int, ext_ids: Sequence[str]) -> list[AppChange]:
        if len(ext_ids) >= conflict_sql.CHECK_FIRST_FROM:
            waiting = self.conn.execute(conflict_sql.ANY_PENDING, {"c": calendar_id}).fetchone()
            if not (waiting and waiting["pending"]):
                return []
        rows = self.conn.execute(conflict_sql.PENDING, {"c": calendar_id, "ids": list(ext_ids)}).fetchall()
        return [AppChange(r["ext"], r["outboxId"], r["op"], r["changedAt"], r["hash"], r["app_version"])
                for r in rows]

    def record_conflict(self, calendar_id: int, ext_id: str, *, policy: str, winner: str, app: str | None,
                        provider: str | None, outbox_id: int) -> None:
        self.conn.execute(conflict_sql.RECORD, {"c": calendar_id, "ext": ext_id, "policy": policy,
                                                "winner": winner, "app": app, "provider": provider,
                                                "outbox": outbox_id})

    def supersede(self, outbox_id: int) -> None:
        self.conn.execute(conflict_sql.SUPERSEDE, {"outbox": outbox_id})

    # --- sync-back ----------------------------------------------------------------------------------

    def pending_pushes(self, calendar_id: int) -> list[Row]:
        return out_sql.pending(self.conn, calendar_id, out_sql.BATCH)

    def count_deletes(self, calendar_id: int) -> dict[str, int]:
        return out_sql.count_deletes(self.conn, calendar_id)

    def event_row(self, event_id: int) -> Row | None:
        return out_sql.event_row(self.conn, event_id)

    def share_attendees(self, event_id: int) -> list[Row]:
        return out_sql.share_attendees(self.conn, event_id)

    def close_push(self, outbox_id: int, changed_at: datetime, outcome: str, error: str | None) -> None:
        self.conn.execute(out_sql.DONE, {"o": outbox_id, "changed": changed_at, "outcome": outcome,
                                         "error": error})

    def retry_push_later(self, outbox_id: int, error: str, delay: float) -> None:
        self.conn.execute(out_sql.RETRY_LATER, {"o": outbox_id, "error": error, "delay": delay})

    def log_push(self, user_id: int, data: dict[str, Any]) -> None:
        out_sql.log_push(self.conn, user_id, data)

    def adopt(self, calendar_id: int, ext_id: str, event_id: int) -> None:
        self.conn.execute(out_sql.ADOPT, {"c": calendar_id, "ext": ext_id, "e": event_id})

    def store_pushed(self, event_id: int, stored: dict[str, Any]) -> None:
        self.conn.execute(out_sql.STORE_PUSHED, {"e": event_id, **stored})

    def store_columns(self, event_id: int, columns: dict[str, Any], outbox_id: int, changed_at: datetime) -> None:
        out_sql.store_columns(self.conn, event_id, columns, outbox_id, changed_at)

    def mark_deleted(self, event_id: int, outbox_id: int, changed_at: datetime) -> None:
        self.conn.execute(out_sql.MARK_DELETED, {"e": event_id, "o": outbox_id, "changed": changed_at})

    def zones_in_use(self, calendar_id: int) -> list[str]:
        return out_sql.zones_in_use(self.conn, calendar_id)

    # --- PostgreSQL-only operations: ad-hoc requests, status, token sealing, the receiver -------------
    # Not part of `Tx` (the run steps' protocol): these serve the operator's tools and the receiver,
    # which only ever run against PostgreSQL, so the in-memory store has no need of them.

    def user_exists(self, user_id: int) -> bool:
        return self.conn.execute(run_sql.USER_EXISTS, {"u": user_id}).fetchone() is not None

    def create_request(self, user_id: int | None, calendar_type: int | None, *, silent: bool, source: str) -> int:
        row = self.conn.execute(run_sql.CREATE_REQUEST, {"user_id": user_id, "calendar_type": calendar_type,
                                                         "silent": silent, "source": source}).fetchone()
        assert row is not None
        return int(row["requestId"])

    def close_unsent_request(self, request_id: int, error: str) -> None:
        self.conn.execute(run_sql.CLOSE_UNSENT_REQUEST, {"request_id": request_id, "error": error})

    def request_status(self, request_id: int) -> tuple[Row, list[Row]]:
        """A request (empty when unknown) and its runs."""
        req = self.conn.execute(run_sql.REQUEST_STATUS, {"request_id": request_id}).fetchone() or {}
        return req, self.conn.execute(run_sql.RUNS_OF_REQUEST, {"request_id": request_id}).fetchall()

    def status_rows(self, user_id: int | None, calendar_id: int | None) -> list[Row]:
        return self.conn.execute(STATUS, {"user": user_id, "calendar": calendar_id}).fetchall()

    def unsealed_after(self, after: int, limit: int, *, key: str | None) -> list[Row]:
        return token_sql.unsealed_after(self.conn, after, limit, key=key)

    def reseal(self, box: Sealer, calendar_id: int, token: str | None, refresh: str | None,
               plain_token: str | None, plain_refresh: str | None) -> bool:
        return token_sql.reseal(self.conn, box, calendar_id, token, refresh, plain_token, plain_refresh)

    def sealing_status(self) -> dict[str, int]:
        return token_sql.sealing_status(self.conn)

    def take_messages(self, calendar_type: int,
                      messages: list[tuple[str, str, int, int | None]]) -> dict[str, int | None]:
        return watch_sql.take_messages(self.conn, calendar_type, messages)

    def hint_series(self, named: list[tuple[str, str]]) -> None:
        watch_sql.hint_series(self.conn, named)


class PgStore:
    """The store on the process's PostgreSQL pool."""

    @contextmanager
    def unit(self, *, timeout: float | None = None, origin_sync: bool = True) -> Iterator[PgTx]:
        """One transaction: everything done through the Tx commits together, or not at all.

        ``timeout`` bounds the wait for a pooled connection (PoolTimeout after it) where a caller must
        answer quickly; ``origin_sync`` False marks the writes as not autosync's own imports (the
        outbox trigger then treats them as app changes; readers need not care).
        """
        with transaction(origin_sync=origin_sync, timeout=timeout) as conn:
            yield PgTx(conn)

    def encode(self, events: Sequence[Event]) -> Encoded:
        """COPY rows of ``events`` (content hashes included), built with no connection held."""
        return ev_sql.encode(events)


class ChannelFeed:
    """The receiver's own connection to the channel list: every live channel, then each change as the
    database announces it (NOTIFY on commit, migration 0005). A context manager; raises psycopg.Error
    when the server is gone, and the caller reconnects."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Conn | None = None

    def __enter__(self) -> ChannelFeed:
        # TCP keepalives notice a peer that vanished without closing the connection.
        self._conn = connect(self._url, autocommit=True, connect_timeout=3, keepalives=1, keepalives_idle=10,
                             keepalives_interval=5, keepalives_count=3)
        watch_sql.listen_for_channels(self._conn)  # before any load: nothing committed in between is missed
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def _c(self) -> Conn:
        assert self._conn is not None, "use ChannelFeed as a context manager"
        return self._conn

    def all(self) -> list[Row]:
        """Every live channel: channelId, calendarType, secretHash."""
        return watch_sql.live_channels(self._c)

    def by_id(self, channel_ids: list[str]) -> list[Row]:
        """These channels as they are now (``live`` false once stopped; absent once deleted)."""
        return watch_sql.channels_by_id(self._c, channel_ids)

    def changed(self, timeout: float, limit: int) -> list[str]:
        """Ids of channels announced as changed, waiting up to ``timeout`` seconds for the first."""
        return [n.payload for n in self._c.notifies(timeout=timeout, stop_after=limit)]

    def ping(self) -> None:
        """One round trip: raises when the server is gone."""
        ping(self._c)

