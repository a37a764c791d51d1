"""Loading and dumping the emulator's seed document (format described in generator.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from autosync.emulator.oauth import RefreshGrant

if TYPE_CHECKING:
    from autosync.emulator.server import Emulator


def load_seed(emu: Emulator, doc: dict[str, Any]) -> None:
    """Create the clients, accounts, calendars and events a seed document describes."""
    for provider, client in (doc.get("clients") or {}).items():
        pair = (client["client_id"], client["client_secret"])
        emu.clients[provider] = pair
        emu.oauth.clients[provider] = pair
    for spec in doc.get("accounts") or []:
        _load_account(emu, spec, skip_outlook_calendars="graph" in doc)
    if doc.get("graph") and emu.graph is not None:
        emu.graph.load(doc["graph"])


def _load_account(emu: Emulator, spec: dict[str, Any], skip_outlook_calendars: bool) -> None:
    provider = spec["provider"]
    calendars = spec.get("calendars") or []
    account_id, _, _ = emu.create_account(
        provider,
        spec["email"],
        spec.get("account_id"),
        spec.get("refresh_token"),
        with_calendar=not calendars,
    )
    for extra in spec.get("refresh_tokens") or []:
        if extra != spec.get("refresh_token"):
            emu.oauth.refresh[extra] = RefreshGrant(account_id)
    if provider == "outlook" and skip_outlook_calendars:
        return
    for index, cal_spec in enumerate(calendars):
        primary = cal_spec.get("primary", index == 0)
        cal_id = emu.create_calendar(
            account_id,
            cal_spec.get("calendar_id"),
            cal_spec.get("name"),
            cal_spec.get("time_zone", "UTC"),
            primary=primary,
        )
        for event in (cal_spec.get("events") or []) if provider == "google" else []:
            emu.google.insert(emu.google.calendars[cal_id], event, raw=True)
        if provider == "outlook" and emu.graph is not None and cal_spec.get("events"):
            emu.graph.import_events(cal_id, list(cal_spec["events"]))


def dump_state(emu: Emulator) -> dict[str, Any]:
    """Everything in the seed format; Google events raw (cancelled too), Graph via its own dump()."""
    graph_dump = emu.graph.dump() if emu.graph is not None else None
    graph_calendars = (graph_dump or {}).get("calendars") or []
    accounts = []
    for account in emu.oauth.accounts.values():
        tokens = emu.oauth.refresh_tokens_of(account.id)
        entry: dict[str, Any] = {
            "provider": account.provider,
            "account_id": account.id,
            "email": account.email,
            "refresh_token": tokens[-1] if tokens else None,
            "refresh_tokens": tokens,
            "calendars": [],
        }
        if account.provider == "google":
            for cal in emu.google.calendars.values():
                if cal.owner.id == account.id:
                    entry["calendars"].append(
                        {
                            "calendar_id": cal.id,
                            "name": cal.summary,
                            "primary": cal.primary,
                            "time_zone": cal.time_zone,
                            "events": [s.body for s in cal.events.values()],
                        }
                    )
        else:
            for cal_id, name in emu.outlook_calendars.get(account.id, []):
                entry["calendars"].append({"calendar_id": cal_id, "name": name, "events": []})
            for cal in graph_calendars:
                known = emu.outlook_calendar_ids()
                if cal.get("account_id") == account.id and cal.get("id") not in known:
                    found = {"calendar_id": cal["id"], "name": cal.get("name"), "events": []}
                    entry["calendars"].append(found)
        accounts.append(entry)
    clients = {p: {"client_id": c[0], "client_secret": c[1]} for p, c in emu.clients.items()}
    doc: dict[str, Any] = {"clients": clients, "accounts": accounts}
    if graph_dump is not None:
        doc["graph"] = graph_dump
    return json.loads(json.dumps(doc))
