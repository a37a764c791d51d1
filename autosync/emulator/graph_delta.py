"""calendarView/delta of the Graph emulator: rounds, pages, state tokens and their invalidation.

Follows Graph's event delta documentation (PROVIDER_RULES.md 12-14, 20-22)."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autosync.emulator.graph_errors import GraphError, bad_request
from autosync.emulator.graph_model import StoredEvent, parse_occurrence_id
from autosync.emulator.graph_render import Ctx, render_bare, render_full, render_removed
from autosync.emulator.graph_store import Slot, Store, instant
from autosync.emulator.graph_time import epoch, overlaps

_ALNUM = string.ascii_letters + string.digits
DELTA_MASTER_MODES = ("all", "started_in_window", "none")
Entry = list[Any]  # ["item", id] | ["occ", occurrence id, master id, original epoch] | ["removed", id]


@dataclass
class SyncState:
    """What one generation of tokens stands for: window, change position and the ids the client holds."""

    gen: int
    calendar_id: str
    win_start: datetime
    win_end: datetime
    as_of: int
    known: set[str]
    entries: list[Entry] = field(default_factory=list)  # the round that ends in this state's deltaLink


@dataclass
class DeltaConfig:
    """Admin-tunable delta behaviour."""

    default_page_size: int = (
        10  # Graph's documented default for events paging; override per request by Prefer
    )
    signal_cancelled_occurrences: bool = False  # provider rule 21: a cancelled occurrence gets no @removed by default
    # Which series masters a round lists beside their instances: "all" (recorded in ridafkih/keeper.sh
    # PR 409), "started_in_window" (masters of series that began before the window are left out) or
    # "none" (Microsoft's delta docs name only single instances, occurrences and exceptions). Public
    # reports disagree, so clients must cope with each; see _listed().
    delta_masters: str = "all"
    # Deleting one occurrence changes its master (change key, a change notification, the master's
    # cancelledOccurrences) but shows up in no delta round at all: neither an @removed for the
    # occurrence nor the series again (microsoft-graph-docs PR 4501: "no indication is given for a
    # deleted occurrence"). Off: the series is listed again, as a change to its master.
    silent_occurrence_deletes: bool = False
    empty_first_page: bool = False  # start each round with an empty page that has a nextLink
    max_states_per_calendar: int = 200  # older generations answer 410 SyncStateNotFound


def _rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_token() -> str:
    """Raw token text as it appears in a link; it needs URL care (provider rule 12, 38).

    Escapes of ``+ / = % &`` and of a non-ASCII letter, plus ``-_.``; also an escaped space (``%20``),
    which form encoders (``urlencode``, requests' ``params=``) re-encode as ``+``, so a client that
    decodes and rebuilds the link is caught.
    """
    return (
        f"R0us{_rand(10)}-{_rand(4)}_{_rand(6)}.{_rand(5)}%2B{_rand(4)}%2F{_rand(6)}%3D%25{_rand(3)}"
        f"%26%C3%A9{_rand(4)}%20{_rand(4)}"
    )


class Delta:
    """Delta rounds over a Store; callers hold the GraphState lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.config = DeltaConfig()
        self.states: dict[int, SyncState] = {}
        self.tokens: dict[str, list[Any]] = {}  # raw token -> ["skip", gen, offset] | ["delta", gen, 0]
        self.gen = 100

    # current window content ----------------------------------------------------------------------
    def current(self, cal_id: str, low: datetime, high: datetime) -> dict[str, tuple[int, Entry]]:
        """Every in-window item with its version: singles, masters, occurrences, exceptions."""
        groups: list[tuple[datetime, list[tuple[str, int, Entry]]]] = []
        for ev in self.store.live_items(cal_id):
            if ev.kind == "singleInstance":
                start, end = instant(ev.start, ev.all_day), instant(ev.end, ev.all_day)
                if overlaps(start, end, low, high):
                    groups.append((start, [(ev.id, ev.seq, ["item", ev.id])]))
                continue
            slots = self.store.slots(ev, low, high)
            if slots:
                master = [(ev.id, ev.seq, ["item", ev.id])] if self._listed(ev, low) else []
                members = master + [self._slot_entry(s) for s in slots]
                groups.append((instant(slots[0].start, ev.all_day), members))
        groups.sort(key=lambda g: g[0])
        return {item_id: (version, entry) for _, members in groups for item_id, version, entry in members}

    @staticmethod
    def _slot_entry(slot: Slot) -> tuple[str, int, Entry]:
        if slot.exception is not None:
            return slot.id, slot.exception.seq, ["item", slot.id]
        return slot.id, slot.master.seq, ["occ", slot.id, slot.master.id, epoch(slot.original)]

    def _listed(self, master: StoredEvent, low: datetime) -> bool:
        """Whether a round lists this series master beside its instances (``delta_masters``)."""
        mode = self.config.delta_masters
        if mode == "none":
            return False
        return mode != "started_in_window" or instant(master.start, master.all_day) >= low

    def _silent(self, item_id: str) -> bool:
        """A cancelled occurrence of a live series: no @removed unless configured (provider rule 21)."""
        if self.config.signal_cancelled_occurrences:
            return False
        parsed = parse_occurrence_id(item_id)
        master = self.store.events.get(self.store.by_key.get(parsed[0], "")) if parsed else None
        return bool(parsed and master and not master.deleted and parsed[1] in master.cancelled)

    def _unlisted_master(self, item_id: str) -> bool:
        """A master rounds leave out (``delta_masters``) gets no @removed as 'outside the window' either.

        Its instances still come and go; a client that never saw the master learns of its deletion
        from them, or from its next full round.
        """
        ev = self.store.events[item_id]
        return ev.kind == "seriesMaster" and self.config.delta_masters != "all"

    # rounds --------------------------------------------------------------------------------------
    def start_round(
        self, cal_id: str, low: datetime, high: datetime, previous: SyncState | None
    ) -> SyncState:
        """Snapshot a round: all in-window items, or the changes since ``previous``."""
        now = self.current(cal_id, low, high)
        if previous is None:
            entries = [entry for _, entry in now.values()]
        else:
            gone = [i for i in previous.known if i not in now and not self._silent(i)]
            outside = [
                i
                for i in self.store.by_calendar.get(cal_id, [])
                if self.store.events[i].seq > previous.as_of
                and i not in now
                and i not in previous.known
                and not self._silent(i)
                and not self._unlisted_master(i)
            ]
            changed = [
                entry
                for i, (version, entry) in now.items()
                if i not in previous.known or version > previous.as_of
            ]
            entries = [["removed", i] for i in gone + outside] + changed
        self.gen += 1
        state = SyncState(self.gen, cal_id, low, high, self.store.seq, set(now), entries)
        self.states[state.gen] = state
        self._evict(cal_id)
        return state

    def _evict(self, cal_id: str) -> None:
        gens = sorted(g for g, s in self.states.items() if s.calendar_id == cal_id)
        for gen in gens[: max(0, len(gens) - self.config.max_states_per_calendar)]:
            del self.states[gen]

    def invalidate(self, cal_id: str) -> None:
        """Forget every generation of a calendar: its links answer 410 SyncStateNotFound."""
        for gen in [g for g, s in self.states.items() if s.calendar_id == cal_id]:
            del self.states[gen]

    def lookup(self, raw: str, cal_id: str) -> tuple[str, SyncState, int]:
        """(kind, state, offset) for a raw token; 400 unknown, 410 forgotten generation."""
        found = self.tokens.get(raw)
        if found is None:
            raise bad_request("Invalid delta token.")
        kind, gen, offset = found
        state = self.states.get(gen)
        if state is None:
            highest = max((g for g in self.states), default=self.gen)
            raise GraphError(
                410,
                "SyncStateNotFound",
                f"The sync state generation is not found; generation={gen};[highest={highest}].",
            )
        if state.calendar_id != cal_id:
            raise bad_request("Invalid delta token.")
        return kind, state, offset

    def page(self, state: SyncState, offset: int, size: int, ctx: Ctx, link_base: str) -> dict[str, Any]:
        """One page of a round: exactly one of @odata.nextLink / @odata.deltaLink (absolute links)."""
        value: list[dict[str, Any]] = []
        end = offset
        if offset >= 0:
            end = min(len(state.entries), offset + size)
            for entry in state.entries[offset:end]:
                rendered = self._render(entry, ctx, state.as_of)
                if rendered is not None:
                    value.append(rendered)
        raw = new_token()
        body: dict[str, Any] = {"@odata.context": f"{ctx.base_url}/graph/v1.0/$metadata#Collection(event)"}
        if end < len(state.entries) or offset < 0:
            self.tokens[raw] = ["skip", state.gen, max(end, 0)]
            body["@odata.nextLink"] = f"{link_base}?$skiptoken={raw}"
        else:
            self.tokens[raw] = ["delta", state.gen, 0]
            body["@odata.deltaLink"] = f"{link_base}?$deltatoken={raw}"
        body["value"] = value
        return body

    def _render(self, entry: Entry, ctx: Ctx, as_of: int) -> dict[str, Any] | None:
        if entry[0] == "removed":
            return render_removed(entry[1])
        if entry[0] == "item":
            ev = self.store.events.get(entry[1])
            if ev is None or ev.deleted:
                return None if self._silent(entry[1]) else render_removed(entry[1])
            master = self.store.master_of(ev) if ev.kind == "exception" else None
            return render_full(ev, ctx, master=master, delta=True)
        master = self.store.events.get(entry[2])
        if master is None or master.deleted:
            return render_removed(entry[1])
        if master.seq <= as_of and entry[3] not in master.cancelled and entry[1] not in master.exception_ids:
            # The series has no new version since the round's snapshot listed this slot, and the slot
            # was neither cancelled nor made an exception since: it is still a plain occurrence, with no
            # need to test the rule again (a membership walk from the series' first start).
            known = self.store.slot_at(master, entry[1], entry[3])
            return render_bare(master, entry[1], (known.start, known.end), ctx)
        slot = self.store.occurrence(entry[1])
        if slot is None:
            return None if self._silent(entry[1]) else render_removed(entry[1])
        if slot.id in master.exception_ids:  # became an exception after the snapshot
            exc = self.store.events[slot.id]
            return render_full(exc, ctx, master=master, delta=True)
        return render_bare(master, slot.id, (slot.start, slot.end), ctx)

    # persistence ---------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {
            "gen": self.gen,
            "config": vars(self.config),
            "tokens": self.tokens,
            "states": [
                {
                    "gen": s.gen,
                    "calendar_id": s.calendar_id,
                    "win_start": s.win_start.isoformat(),
                    "win_end": s.win_end.isoformat(),
                    "as_of": s.as_of,
                    "known": sorted(s.known),
                    "entries": s.entries,
                }
                for s in self.states.values()
            ],
        }

    def load(self, data: dict[str, Any]) -> None:
        """Inverse of dump()."""
        self.gen = data.get("gen", self.gen)
        self.config = DeltaConfig(**data.get("config", {}))
        self.tokens = dict(data.get("tokens", {}))
        self.states = {}
        for s in data.get("states", []):
            self.states[s["gen"]] = SyncState(
                s["gen"],
                s["calendar_id"],
                datetime.fromisoformat(s["win_start"]),
                datetime.fromisoformat(s["win_end"]),
                s["as_of"],
                set(s["known"]),
                s["entries"],
            )
