"""Time-zone names: Windows (Graph) <-> IANA, via tzlocal's CLDR-generated map (provider rule 11).

Graph sends Windows names (``W. Europe Standard Time``), sometimes IANA names, and for legacy
custom zones the pseudo-name ``tzone://Microsoft/Custom``. Unknown names resolve to ``None`` so the
caller can fall back (to the event's other zone, then UTC) and keep syncing.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "Coordinated Universal Time"})


@lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo | None:
    """A ZoneInfo for an IANA or Windows zone name, or None when the name is unknown."""
    iana = iana_name(name)
    return ZoneInfo(iana) if iana else None


@lru_cache(maxsize=1024)
def iana_name(name: str | None) -> str | None:
    """The IANA name for a Windows or IANA zone name; None for empty, custom or unknown names."""
    if not name:
        return None
    if name in UTC_NAMES:
        return "UTC"
    if _is_iana(name):
        return name
    mapped = win_tz.get(name)
    return mapped if mapped and _is_iana(mapped) else None


@lru_cache(maxsize=1024)
def windows_name(name: str | None) -> str | None:
    """The Windows name Graph expects for an IANA (or already Windows) name; None when unmapped."""
    if not name:
        return None
    if name in UTC_NAMES:
        return "UTC"
    if name in win_tz:
        return name
    return tz_win.get(name)


def graph_zone(name: str | None) -> tuple[str, ZoneInfo]:
    """The Windows name to send Graph for ``name`` and the IANA zone Graph will apply to it.

    Rendering wall times in the zone the reader maps the Windows name back to (not in ``name``
    itself) keeps a write/read round trip exact even where two IANA zones share one Windows zone
    but differed historically. Unmapped names fall back to UTC.
    """
    win = windows_name(name)
    iana = iana_name(win) if win else None
    if win is None or iana is None:
        return "UTC", ZoneInfo("UTC")
    return win, ZoneInfo(iana)


def is_iana(name: str | None) -> bool:
    """True when ``name`` is a zone the IANA database (tzdata) knows."""
    return bool(name) and _is_iana(str(name))


@lru_cache(maxsize=1024)
def _is_iana(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
