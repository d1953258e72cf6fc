"""Leader election on a coordination.k8s.io/v1 Lease: several replicas, one active.

Shared by the operator (one active replica runs kopf) and the gateway (one replica publishes
VirtualKey status). Standard library only: each side passes its own API client through the
small `LeaseAPI` protocol and translates its errors into `LeaseError`/`LeaseConflict`.

The algorithm is client-go's: a holder renews every `duration / 3`; a candidate takes the Lease
when it is free, or when its record has not changed for `duration` *by the candidate's own
clock* (so clock skew between nodes does not matter); every write carries the resourceVersion
it read, so two candidates cannot both win. A leader that cannot renew for 2/3 of the duration
steps down before anyone else may take over. A leader that stops cleanly releases the Lease,
so a standby takes over within one retry period.

Two ways to use it:
- `acquire()` then `hold()` (the operator): stand by until leading, then renew until the Lease
  is lost; the caller stops working when `hold()` returns.
- `campaign()` (the gateway): run for leadership forever and keep `leader` up to date; the
  caller checks `leader` before each piece of work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "LeaderElector",
    "LeaseAPI",
    "LeaseConfig",
    "LeaseConflict",
    "LeaseError",
    "default_identity",
    "lease_time",
]

_log = logging.getLogger(__name__)


class LeaseError(Exception):
    """The API server refused a Lease call or could not be reached."""


class LeaseConflict(LeaseError):
    """The Lease was created or changed by someone else since it was read (409), or is gone."""


class LeaseAPI(Protocol):
    """The three calls leader election needs, in the caller's own client."""

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when it does not exist."""
        ...

    async def create_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create it; LeaseConflict when it already exists."""
        ...

    async def replace_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace it at `body`'s resourceVersion; LeaseConflict when that is stale."""
        ...


def default_identity() -> str:
    """`$POD_NAME` in a cluster (unique per replica), else host, pid and a random suffix."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    return f"{socket.gethostname()}-{os.getpid()}-{random.randrange(16**4):04x}"


def lease_time(moment: datetime | None = None) -> str:
    """A Lease's MicroTime: RFC 3339 in UTC with microseconds."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    duration: float = 15.0

    @property
    def renew_every(self) -> float:
        return self.duration / 3

    @property
    def renew_deadline(self) -> float:
        return self.duration * 2 / 3

    @property
    def retry_every(self) -> float:
        return max(0.2, self.duration / 7.5)


class LeaderElector:
    """Acquires, holds and releases one Lease for one identity."""

    def __init__(self, api: LeaseAPI, config: LeaseConfig,
                 clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None) -> None:
        self._api = api
        self.config = config
        self._clock = clock
        self._log = logger or _log
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.leader = False

    @property
    def holder(self) -> str | None:
        """Who held the Lease when it was last read (None: free, or not read yet)."""
        return self._observed[0] if self._observed else None

    def _observe(self, spec: Mapping[str, Any]) -> bool:
        """Remember the record; True when it has not changed for a whole lease duration."""
        record = (spec.get("holderIdentity"), spec.get("renewTime"),
                  spec.get("leaseDurationSeconds"))
        now = self._clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.config.duration)
        return now >= self._observed_at + duration

    def _duration(self) -> int:
        return max(1, round(self.config.duration))

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True while this identity holds the Lease. Raises LeaseError when the
        API cannot be asked."""
        me, now = self.config.identity, lease_time()
        lease = await self._api.get_lease(self.config.namespace, self.config.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": self._duration(),
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
            }
            try:
                await self._api.create_lease(body)
            except LeaseConflict:
                return False
            self._observed = (me, now, self._duration())
            return True
        spec = dict(lease.get("spec") or {})
        holder = spec.get("holderIdentity")
        expired = self._observe(spec)
        if holder and holder != me and not expired:
            return False
        if holder != me:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder
                                                                                  else 0)
        spec.update(holderIdentity=me, leaseDurationSeconds=self._duration(), renewTime=now)
        try:
            await self._api.replace_lease({**lease, "spec": spec})
        except LeaseConflict:
            return False
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this identity leads (True), or until `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await self.try_acquire_or_renew():
                    self._log.info("leading: holding Lease %s/%s as %s", self.config.namespace,
                                   self.config.name, self.config.identity)
                    self.leader = True
                    return True
            except LeaseError as exc:
                self._log.warning("cannot read Lease %s/%s: %s", self.config.namespace,
                                  self.config.name, exc)
            if not announced:
                self._log.info("standing by: Lease %s/%s is held by %s", self.config.namespace,
                               self.config.name, self.holder)
                announced = True
            await _wait(stop, self.config.retry_every + random.uniform(
                0, self.config.retry_every / 5))
        return False

    async def hold(self) -> None:
        """Renew until leadership is lost; returns then (the caller must stop working)."""
        last_renewed = self._clock()
        while True:
            await asyncio.sleep(self.config.renew_every)
            while True:
                try:
                    if await self.try_acquire_or_renew():
                        last_renewed = self._clock()
                        break
                    self._log.error("lost the Lease %s/%s to %s", self.config.namespace,
                                    self.config.name, self.holder or "?")
                    self.leader = False
                    return
                except LeaseError as exc:
                    self._log.warning("cannot renew the Lease: %s", exc)
                if self._clock() - last_renewed >= self.config.renew_deadline:
                    self._log.error("could not renew the Lease for %.1f s; stepping down",
                                    self.config.renew_deadline)
                    self.leader = False
                    return
                await asyncio.sleep(self.config.retry_every)

    async def campaign(self, stop: asyncio.Event | None = None) -> None:
        """Run for leadership until `stop` is set (or the task is cancelled), keeping `leader`
        true exactly while this identity holds the Lease: renewing every `renew_every` while
        leading, retrying every `retry_every` while standing by, stepping down when renewals
        fail for `renew_deadline`. Never raises on API errors. Releases the Lease on the way
        out."""
        stop = stop or asyncio.Event()
        last_renewed = 0.0
        try:
            while not stop.is_set():
                try:
                    won = await self.try_acquire_or_renew()
                except LeaseError as exc:
                    won = None
                    self._log.warning("cannot reach Lease %s/%s: %s", self.config.namespace,
                                      self.config.name, exc)
                if won:
                    last_renewed = self._clock()
                    if not self.leader:
                        self._log.info("leading: holding Lease %s/%s as %s",
                                       self.config.namespace, self.config.name,
                                       self.config.identity)
                    self.leader = True
                elif self.leader and (won is False or self._clock() - last_renewed
                                      >= self.config.renew_deadline):
                    self._log.warning("no longer leading Lease %s/%s (held by %s)",
                                      self.config.namespace, self.config.name,
                                      self.holder or "nobody")
                    self.leader = False
                pause = self.config.renew_every if self.leader and won else \
                    self.config.retry_every + random.uniform(0, self.config.retry_every / 5)
                await _wait(stop, pause)
        finally:
            if self.leader:
                await asyncio.shield(self.release())

    async def release(self) -> None:
        """Give the Lease up at once (a clean shutdown), so a standby need not wait it out."""
        if not self.leader:
            return
        self.leader = False
        try:
            lease = await self._api.get_lease(self.config.namespace, self.config.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") \
                    != self.config.identity:
                return
            spec = dict(lease["spec"])
            spec.pop("holderIdentity", None)
            spec.update(leaseDurationSeconds=1, renewTime=lease_time())
            await self._api.replace_lease({**lease, "spec": spec})
            self._log.info("released the Lease %s/%s", self.config.namespace, self.config.name)
        except LeaseError as exc:
            self._log.warning("could not release the Lease (it expires by itself): %s", exc)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    except TimeoutError:
        pass
