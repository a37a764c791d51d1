"""Emulated network and service latency: how long each provider answer takes (fixed part ± jitter).

Real Google Calendar and Microsoft Graph calls take roughly 100-300 ms each; on loopback the emulator
answers in well under a millisecond, which hides every cost of waiting on a provider. A latency rule
makes answers take ``ms`` ± ``jitter_ms`` (uniform), per provider, per endpoint, and separately for
the OAuth token endpoints. The wait is a plain ``time.sleep`` in the request's own server thread,
never under a lock, so concurrent requests wait side by side as they do against the real services.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

PROVIDERS = ("google", "outlook", "any")
KINDS = ("api", "oauth", "all")


@dataclass(frozen=True)
class Latency:
    """``ms`` ± ``jitter_ms`` milliseconds, uniformly distributed."""

    ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ms) and math.isfinite(self.jitter_ms)):
            raise ValueError("latency and jitter must be finite numbers of milliseconds")
        if self.ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency and jitter must be >= 0")
        if self.jitter_ms > self.ms:
            raise ValueError("jitter must not exceed the latency (MS ± JITTER_MS would go below 0)")

    def draw(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if not self.ms:
            return 0.0
        return (self.ms + rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000.0


def parse_latency(text: str) -> Latency:
    """``MS`` or ``MS:JITTER_MS`` (non-negative numbers, jitter <= MS), e.g. ``150`` or ``150:50``."""
    ms, sep, jitter = str(text).strip().partition(":")
    try:
        numbers = (float(ms), float(jitter) if sep else 0.0)
    except ValueError:
        raise ValueError(f"{text!r} is not MS or MS:JITTER_MS (milliseconds, e.g. 150 or 150:50)") from None
    try:
        return Latency(*numbers)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


@dataclass(frozen=True)
class Rule:
    """A latency for requests of one provider (or any), kind (api, oauth or all) and endpoint prefix."""

    provider: str = "any"
    kind: str = "all"
    endpoint: str | None = None
    ms: float = 0.0
    jitter_ms: float = 0.0

    def matches(self, provider: str, kind: str, endpoint: str) -> bool:
        """Whether a request with these coordinates is covered."""
        return (self.provider in ("any", provider) and self.kind in ("all", kind)
                and (self.endpoint is None or endpoint.startswith(self.endpoint)))

    def specificity(self) -> tuple[int, bool, bool]:
        """An endpoint rule beats a kind rule (api or oauth: the OAuth endpoints have their own setting),
        which beats an `all` rule; at equal footing a provider's own rule beats `any`."""
        return (len(self.endpoint or "") + (1 if self.endpoint else 0), self.kind != "all", self.provider != "any")


class LatencyBook:
    """The latency rules in force; the most specific matching rule wins (the latest among equals)."""

    def __init__(self, default: Latency | None = None, oauth: Latency | None = None) -> None:
        self._startup: list[Rule] = []
        if default is not None and default.ms:
            self._startup.append(Rule(ms=default.ms, jitter_ms=default.jitter_ms))
        if oauth is not None:
            self._startup.append(Rule(kind="oauth", ms=oauth.ms, jitter_ms=oauth.jitter_ms))
        self._rules = list(self._startup)
        self._lock = threading.Lock()
        self._rng = random.Random()

    def set(self, spec: dict[str, Any]) -> Rule:
        """Add or replace a rule from its admin JSON (`provider`, `kind`, `endpoint`, `ms`, `jitter_ms`)."""
        provider, kind = spec.get("provider", "any"), spec.get("kind", "all")
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if "latency" in spec:  # the CLI's MS[:JITTER_MS] form
            value = parse_latency(spec["latency"])
        else:
            value = Latency(float(spec.get("ms", 0)), float(spec.get("jitter_ms", 0)))
        endpoint = spec.get("endpoint") or None
        rule = Rule(provider, kind, endpoint, value.ms, value.jitter_ms)
        with self._lock:
            self._rules = [r for r in self._rules if (r.provider, r.kind, r.endpoint) != (provider, kind, endpoint)]
            self._rules.append(rule)
        return rule

    def delay(self, provider: str, endpoint: str, *, oauth: bool) -> float:
        """Seconds the answer to this request waits (0 when no rule covers it)."""
        kind = "oauth" if oauth else "api"
        with self._lock:
            found = [r for r in self._rules if r.matches(provider, kind, endpoint)]
            if not found:
                return 0.0
            best = max(reversed(found), key=Rule.specificity)  # max keeps the first: the latest of equals
            return Latency(best.ms, best.jitter_ms).draw(self._rng)

    def list(self) -> list[dict[str, Any]]:
        """The rules in force, oldest first."""
        with self._lock:
            return [asdict(r) for r in self._rules]

    def reset(self) -> None:
        """Back to the latency the emulator was started with (0 unless `--latency` was given)."""
        with self._lock:
            self._rules = list(self._startup)

    def clear(self) -> None:
        """No latency at all, whatever the emulator was started with."""
        with self._lock:
            self._rules = []
