"""Windows <-> IANA zone names come from tzlocal's CLDR map; unknown names resolve to None, never raise."""

from __future__ import annotations

import pytest

from autosync.normalize.timezones import graph_zone, iana_name, windows_name, zone


@pytest.mark.parametrize(
    ("name", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Eastern Standard Time", "America/New_York"),
        ("Europe/Paris", "Europe/Paris"),  # Graph sometimes sends IANA names
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
        ("tzone://Microsoft/Custom", None),
        ("Mars Standard Time", None),
        ("", None),
        (None, None),
    ],
)
def test_zone_names_resolve_to_iana_or_none(name: str | None, iana: str | None) -> None:
    assert iana_name(name) == iana
    assert (zone(name) is None) == (iana is None)


def test_iana_names_map_to_the_windows_names_graph_expects() -> None:
    assert windows_name("Europe/Berlin") == "W. Europe Standard Time"
    assert windows_name("Europe/Amsterdam") == "W. Europe Standard Time"
    assert windows_name("Asia/Kolkata") == "India Standard Time"
    assert windows_name("UTC") == "UTC"
    assert windows_name("Nowhere/Special") is None


def test_graph_zone_renders_in_the_zone_graph_will_read_back() -> None:
    win, where = graph_zone("Europe/Amsterdam")
    assert win == "W. Europe Standard Time" and str(where) == "Europe/Berlin"
    assert graph_zone("Nowhere/Special")[0] == "UTC"
