"""Fire-once markers: "has anyone, on any replica, raised this alert yet?"

A marker is a set-if-absent entry in the shared store (`claim_marker`, implemented by the Redis
and embedded stores) that lapses after a TTL: the first replica to claim
`budget:<scope>:<period>:<pct>` sends the alert and every other replica stays quiet. A store
without `claim_marker` falls back to a process-local set, which dedupes within one process only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["MarkerStore", "Markers"]


@runtime_checkable
class MarkerStore(Protocol):
    async def claim_marker(self, name: str, now: datetime, ttl_seconds: int) -> bool:
        """True for the one caller that sets `name` first; the marker lapses after the TTL."""
        ...


class Markers:
    """Claims through the store, with a local memory of what is known to be claimed (by
    anyone) so that a settled question costs no further round trip."""

    def __init__(self) -> None:
        self._known: dict[str, float] = {}  # name -> lapse time (epoch seconds)
        self._local: dict[str, float] = {}

    def known(self, name: str, now: datetime) -> bool:
        lapse = self._known.get(name)
        return lapse is not None and lapse > now.timestamp()

    async def claim(self, store: object, name: str, now: datetime, ttl_seconds: int) -> bool:
        """Claim `name`: True when this call set it (so this process sends the alert)."""
        if self.known(name, now):
            return False
        lapse = now.timestamp() + max(1, ttl_seconds)
        if isinstance(store, MarkerStore):
            claimed = await store.claim_marker(name, now, ttl_seconds)
        else:
            held = self._local.get(name)
            claimed = held is None or held <= now.timestamp()
            if claimed:
                self._local[name] = lapse
        self._known[name] = lapse
        if len(self._known) > 100_000:
            cutoff = now.timestamp()
            self._known = {n: t for n, t in self._known.items() if t > cutoff}
        return claimed

    def forget(self) -> None:
        self._known.clear()
