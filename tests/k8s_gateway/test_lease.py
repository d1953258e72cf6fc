"""Leader election as the gateway uses it (`campaign`): one leader among candidates, a clean
hand-over on release, and stepping down when renewals keep failing. The operator's use
(`acquire`/`hold`) runs in tests/operator_e2e/test_replicas.py against the emulator."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

from tollgate.gateway.kube.lease import LeaderElector, LeaseConfig, LeaseConflict, LeaseError


class MemoryLeases:
    """The three Lease calls, kept in memory with resourceVersion checks."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise LeaseError("503 ServiceUnavailable: injected")

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    async def create_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise LeaseConflict("409 AlreadyExists")
        self.version += 1
        self.lease = {**copy.deepcopy(dict(body)),
                      "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return copy.deepcopy(self.lease)

    async def replace_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise LeaseConflict("409 Conflict")
        self.version += 1
        self.lease = {**copy.deepcopy(dict(body)),
                      "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return copy.deepcopy(self.lease)

    @property
    def holder(self) -> str | None:
        return ((self.lease or {}).get("spec") or {}).get("holderIdentity")


def _elector(api: MemoryLeases, identity: str) -> LeaderElector:
    return LeaderElector(api, LeaseConfig("ns", "status", identity, duration=0.6))


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_one_candidate_leads_and_hands_over_cleanly() -> None:
    api = MemoryLeases()
    electors = [_elector(api, "a"), _elector(api, "b")]
    tasks = [asyncio.create_task(e.campaign()) for e in electors]
    await _until(lambda: any(e.leader for e in electors))
    await asyncio.sleep(0.5)  # several renewals later: still exactly one
    assert [e.leader for e in electors].count(True) == 1
    first = 0 if electors[0].leader else 1
    leader, standby = electors[first], electors[1 - first]
    assert api.holder == leader.config.identity

    tasks[first].cancel()  # a clean stop: the Lease is released on the way out
    await asyncio.gather(tasks[first], return_exceptions=True)
    assert not leader.leader
    await _until(lambda: standby.leader, timeout=1.0)  # no need to wait the Lease out
    assert api.holder == standby.config.identity
    tasks[1 - first].cancel()
    await asyncio.gather(tasks[1 - first], return_exceptions=True)
    assert api.holder is None


async def test_a_leader_steps_down_when_it_cannot_renew_and_leads_again_later() -> None:
    api = MemoryLeases()
    a = _elector(api, "a")
    task = asyncio.create_task(a.campaign())
    await _until(lambda: a.leader)
    api.broken = True
    # It must give up before its Lease (0.6 s) could be taken over by someone else.
    await _until(lambda: not a.leader, timeout=0.6)
    api.broken = False
    await _until(lambda: a.leader, timeout=2.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
