"""Leader election on a coordination.k8s.io/v1 Lease: several replicas, one active.

Why a Lease and not kopf's peering: kopf peering pauses *every* operator that sees a peer of
the same priority (identical replicas of one Deployment would all stop), needs its own
KopfPeering CRD, and expires a silent peer only after a minute. A Lease is built in, visible
(`kubectl get lease tollgate-operator`), and expires in `lease_seconds`.

The algorithm is client-go's: a holder renews every `duration / 3`; a candidate takes the Lease
when it is free, or when its record has not changed for `duration` *by the candidate's own
clock* (so clock skew between nodes does not matter); every write carries the resourceVersion
it read, so two candidates cannot both win. A leader that cannot renew for 2/3 of the duration
steps down before anyone else may take over. A leader that stops cleanly releases the Lease,
so a standby takes over within one retry period.

Standby replicas do not run kopf at all; the caller starts kopf only once `acquire()` returns
and stops it when `hold()` returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tollgate.operator import kube

__all__ = ["LeaderElector", "LeaseConfig", "default_identity"]

logger = logging.getLogger(__name__)


def default_identity() -> str:
    """`$POD_NAME` in a cluster (unique per replica), else host, pid and a random suffix."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    return f"{socket.gethostname()}-{os.getpid()}-{random.randrange(16**4):04x}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    def __init__(self, client: kube.KubeClient, config: LeaseConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self.config = config
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.leader = False

    def _observe(self, spec: dict[str, Any]) -> bool:
        """Remember the record; True when it has not changed for a whole lease duration."""
        record = (spec.get("holderIdentity"), spec.get("renewTime"),
                  spec.get("leaseDurationSeconds"))
        now = self._clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.config.duration)
        return now >= self._observed_at + duration

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True while this identity holds the Lease."""
        me, now = self.config.identity, _now()
        lease = await self._client.get(kube.LEASES, self.config.namespace, self.config.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": self._duration(),
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
            }
            try:
                await self._client.create(kube.LEASES, body)
            except kube.Conflict:
                return False
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
            await self._client.replace(kube.LEASES, {**lease, "spec": spec})
        except (kube.Conflict, kube.NotFound):
            return False
        return True

    def _duration(self) -> int:
        return max(1, round(self.config.duration))

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this identity leads (True), or until `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await self.try_acquire_or_renew():
                    logger.info("leading: holding Lease %s/%s as %s", self.config.namespace,
                                self.config.name, self.config.identity)
                    self.leader = True
                    return True
            except kube.ApiError as exc:
                logger.warning("cannot read Lease %s/%s: %s", self.config.namespace,
                               self.config.name, exc)
            if not announced:
                holder = self._observed[0] if self._observed else None
                logger.info("standing by: Lease %s/%s is held by %s", self.config.namespace,
                            self.config.name, holder)
                announced = True
            jitter = random.uniform(0, self.config.retry_every / 5)
            try:
                await asyncio.wait_for(stop.wait(), self.config.retry_every + jitter)
            except TimeoutError:
                pass
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
                    logger.error("lost the Lease %s/%s to %s", self.config.namespace,
                                 self.config.name, self._observed[0] if self._observed else "?")
                    self.leader = False
                    return
                except kube.ApiError as exc:
                    logger.warning("cannot renew the Lease: %s", exc)
                if self._clock() - last_renewed >= self.config.renew_deadline:
                    logger.error("could not renew the Lease for %.1f s; stepping down",
                                 self.config.renew_deadline)
                    self.leader = False
                    return
                await asyncio.sleep(self.config.retry_every)

    async def release(self) -> None:
        """Give the Lease up at once (a clean shutdown), so a standby need not wait it out."""
        if not self.leader:
            return
        self.leader = False
        try:
            lease = await self._client.get(kube.LEASES, self.config.namespace, self.config.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") \
                    != self.config.identity:
                return
            spec = dict(lease["spec"])
            spec.pop("holderIdentity", None)
            spec.update(leaseDurationSeconds=1, renewTime=_now())
            await self._client.replace(kube.LEASES, {**lease, "spec": spec})
            logger.info("released the Lease %s/%s", self.config.namespace, self.config.name)
        except kube.ApiError as exc:
            logger.warning("could not release the Lease (it expires by itself): %s", exc)
