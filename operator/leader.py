"""Leader election on a coordination.k8s.io/v1 Lease: several replicas, one active.

Why a Lease and not kopf's peering: kopf peering pauses *every* operator that sees a peer of
the same priority (identical replicas of one Deployment would all stop), needs its own
KopfPeering CRD, and expires a silent peer only after a minute. A Lease is built in, visible
(`kubectl get lease tollgate-operator`), and expires in `lease_seconds`.

The algorithm (client-go's) lives in `tollgate.gateway.kube.lease`, shared with the gateway's
status publisher; this module only connects it to the operator's `kube.KubeClient`, whose
errors it translates. Standby replicas do not run kopf at all; the caller starts kopf only
once `acquire()` returns and stops it when `hold()` returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from tollgate.gateway.kube import lease
from tollgate.gateway.kube.lease import LeaseConfig, default_identity
from tollgate.operator import kube

__all__ = ["LeaderElector", "LeaseConfig", "default_identity"]

logger = logging.getLogger(__name__)


class _Leases:
    """`lease.LeaseAPI` over the operator's client."""

    def __init__(self, client: kube.KubeClient) -> None:
        self._client = client

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._client.get(kube.LEASES, namespace, name)
        except kube.ApiError as exc:
            raise lease.LeaseError(str(exc)) from exc

    async def create_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await self._client.create(kube.LEASES, body)
        except kube.Conflict as exc:
            raise lease.LeaseConflict(str(exc)) from exc
        except kube.ApiError as exc:
            raise lease.LeaseError(str(exc)) from exc

    async def replace_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await self._client.replace(kube.LEASES, body)
        except (kube.Conflict, kube.NotFound) as exc:
            raise lease.LeaseConflict(str(exc)) from exc
        except kube.ApiError as exc:
            raise lease.LeaseError(str(exc)) from exc


class LeaderElector(lease.LeaderElector):
    """Acquires, holds and releases one Lease for one identity, through the operator's client."""

    def __init__(self, client: kube.KubeClient, config: LeaseConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(_Leases(client), config, clock, logger)
