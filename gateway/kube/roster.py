"""Which config revision every gateway replica serves: one Lease's annotation, JSON.

Each replica writes its own entry into the annotation `tollgate.dev/served-revisions` of the
Lease `<config-name>-replicas` (in the gateway's namespace):

    {"gw-7d9f-abcde-1": {"revision": "3f2a…", "seenAt": "2026-11-27T10:00:00.000000Z"}, …}

— at once when the revision it serves changes, and otherwise every `heartbeat` seconds. The
status publisher reads it to tell whether a change is in force on every live replica.

Why a Lease's annotation: the gateway's RBAC grants Leases get/create/update and nothing on
Pods, and no list (one object, read by name). Writes carry the resourceVersion they read; a
conflict (two replicas writing at once) is retried with jitter.

Liveness is judged by the reader's own clock, as leader election does: an entry is live while
its `seenAt` keeps changing within `ttl` of the reader observing it (a new reader counts every
entry live until it has watched it for `ttl`). Entries whose `seenAt` is far older than `ttl`
by the writer's clock are pruned by whoever writes next.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.gateway.kube.client import ApiError, Conflict, KubeClient, NotFound, leases_path
from tollgate.gateway.kube.lease import lease_time

__all__ = ["ANNOTATION", "Replica", "Roster"]

log = logging.getLogger("tollgate.kube.roster")

ANNOTATION = "tollgate.dev/served-revisions"
_ATTEMPTS = 4


@dataclass(frozen=True)
class Replica:
    identity: str
    revision: str | None


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def entries_of(lease: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    raw = (((lease or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k): v for k, v in parsed.items() if isinstance(v, dict)}


class Roster:
    """This replica's entry (written) and everyone's (read)."""

    def __init__(self, client: KubeClient, namespace: str, name: str, identity: str,
                 heartbeat: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.heartbeat = heartbeat
        self.ttl = max(3.0, 3 * heartbeat)
        self._clock = clock
        self._observed: dict[str, tuple[Any, float]] = {}
        self.reported: str | None = None

    async def report(self, revision: str | None) -> None:
        """Write this replica's entry (raises ApiError when the API keeps failing)."""
        path = leases_path(self.namespace, self.name)
        for attempt in range(_ATTEMPTS):
            lease = await self.client.get(path)
            entries = entries_of(lease)
            now = datetime.now(UTC)
            horizon = now - timedelta(seconds=10 * self.ttl)
            entries = {k: v for k, v in entries.items()
                       if (_parse_time(v.get("seenAt")) or now) >= horizon}
            entries[self.identity] = {"revision": revision, "seenAt": lease_time(now)}
            annotation = json.dumps(entries, sort_keys=True, separators=(",", ":"))
            try:
                if lease is None:
                    await self.client.create(leases_path(self.namespace), {
                        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace,
                                     "labels": {"app.kubernetes.io/name": "tollgate",
                                                "app.kubernetes.io/component": "gateway"},
                                     "annotations": {ANNOTATION: annotation}},
                        "spec": {}})
                else:
                    metadata = dict(lease.get("metadata") or {})
                    metadata["annotations"] = {**(metadata.get("annotations") or {}),
                                               ANNOTATION: annotation}
                    await self.client.replace(path, {**lease, "metadata": metadata})
                self.reported = revision
                return
            except (Conflict, NotFound):
                await asyncio.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
        raise Conflict(409, "Conflict", f"could not update Lease {self.name} after "
                                        f"{_ATTEMPTS} attempts")

    async def withdraw(self) -> None:
        """Remove this replica's entry (a clean shutdown), best effort."""
        path = leases_path(self.namespace, self.name)
        try:
            lease = await self.client.get(path)
            entries = entries_of(lease)
            if lease is None or self.identity not in entries:
                return
            del entries[self.identity]
            metadata = dict(lease.get("metadata") or {})
            metadata["annotations"] = {**(metadata.get("annotations") or {}),
                                       ANNOTATION: json.dumps(entries, sort_keys=True,
                                                              separators=(",", ":"))}
            await self.client.replace(path, {**lease, "metadata": metadata})
        except ApiError as exc:
            log.info("could not withdraw from the replica roster: %s", exc)

    async def live(self) -> list[Replica]:
        """Every replica whose entry is live by this reader's clock (raises ApiError)."""
        entries = entries_of(await self.client.get(leases_path(self.namespace, self.name)))
        now = self._clock()
        replicas = []
        for identity, entry in sorted(entries.items()):
            stamp = entry.get("seenAt")
            seen = self._observed.get(identity)
            if seen is None or seen[0] != stamp:
                self._observed[identity] = seen = (stamp, now)
            if now - seen[1] < self.ttl:
                revision = entry.get("revision")
                replicas.append(Replica(identity, revision if isinstance(revision, str)
                                        else None))
        for gone in set(self._observed) - set(entries):
            del self._observed[gone]
        return replicas

    async def run(self, revision: Callable[[], str | None], poll: float = 0.25) -> None:
        """Report at once when the served revision changes, else every `heartbeat`; back off
        on API errors. Until cancelled."""
        next_beat = 0.0
        failures = 0
        while True:
            current = revision()
            now = self._clock()
            if current != self.reported or now >= next_beat:
                try:
                    await self.report(current)
                    failures = 0
                    next_beat = now + self.heartbeat
                except ApiError as exc:
                    failures += 1
                    delay = min(self.heartbeat * 4, 0.5 * 2 ** min(failures, 8))
                    log.warning("cannot report the served config revision (retrying in "
                                "%.1f s): %s", delay, exc)
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    continue
            await asyncio.sleep(poll)
