"""Which config revisions this process has served, in order, and since when each key's entry
has been what it is now.

Revisions are content hashes, so they have no order of their own; this log gives them the
order in which this process served them. The status publisher uses it to tell whether a
replica that serves revision R already serves a key's current entry: yes when R is the
revision that entry first appeared in, or a later one.
"""

from __future__ import annotations

from tollgate.gateway.config.models import GatewayConfig, VirtualKeyConfig

__all__ = ["RevisionLog"]


class RevisionLog:
    """Revisions in the order first served (a revision served again moves to the end)."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._positions: dict[str, int] = {}
        self._next = 0
        self._entries: dict[str, VirtualKeyConfig] = {}
        self._since: dict[str, str] = {}
        self.latest: str | None = None

    def record(self, config: GatewayConfig, revision: str) -> bool:
        """Note that `config` (at `revision`) is now served; False when it already was."""
        if revision == self.latest:
            return False
        self._positions.pop(revision, None)
        self._positions[revision] = self._next
        self._next += 1
        while len(self._positions) > self._limit:
            del self._positions[next(iter(self._positions))]
        entries = {key.id: key for key in config.virtual_keys}
        since: dict[str, str] = {}
        for key_id, entry in entries.items():
            kept = self._entries.get(key_id) == entry and key_id in self._since
            since[key_id] = self._since[key_id] if kept else revision
        self._entries, self._since = entries, since
        self.latest = revision
        return True

    def position(self, revision: str | None) -> int | None:
        return None if revision is None else self._positions.get(revision)

    def since(self, key_id: str) -> str | None:
        """The revision this key's current entry first appeared in (None: not served)."""
        return self._since.get(key_id)

    def unchanged_from_start(self, key_id: str) -> bool:
        """Whether this key's entry is the same since the oldest revision remembered here."""
        since = self._since.get(key_id)
        changed = self.position(since)
        return since is not None and (changed is None or changed <= self._oldest())

    def _oldest(self) -> int:
        return next(iter(self._positions.values()), 0)  # insertion order is position order

    def covers(self, served: str | None, key_id: str) -> bool:
        """Whether a replica serving `served` serves this key's current entry.

        A key unchanged since the oldest revision remembered here counts as served by any
        revision (an older revision this process never saw cannot be placed; the key has at
        least not changed since this process started). A key changed since then needs a
        revision at least as new as its change.
        """
        since = self._since.get(key_id)
        if since is None or served == since:
            return True
        changed, seen = self.position(since), self.position(served)
        if changed is None or changed <= self._oldest():
            return True
        return seen is not None and seen >= changed
