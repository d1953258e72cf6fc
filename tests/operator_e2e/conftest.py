"""Fixtures: a fresh emulated API server per test (its own process), and operators run for real
as `python -m tollgate.operator` subprocesses against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.operator_e2e.api import (
    TARGET_NAMESPACE,
    KubeAPI,
    OperatorProcess,
    start_operator,
    wait_for,
)
from tests.support.kmock_server import EmulatorProcess, start_emulator

NAMESPACES = ("tenants", "team-b")
NAMESPACED_ARGS = ("--namespace", "tenants", "--namespace", "team-b")
COMMON_ARGS = ("--credentials-namespace", TARGET_NAMESPACE, "--lease-seconds", "3")


@dataclass
class Cluster:
    emulator: EmulatorProcess
    api: KubeAPI
    directory: Path
    operators: list[OperatorProcess] = field(default_factory=list)

    def diagnose(self) -> str:
        sections = [f"== {op.identity} ==\n{op.tail()}" for op in self.operators]
        emulator_tail = "\n".join(self.emulator.logs().splitlines()[-30:])
        return "\n".join([*sections, f"== emulator ==\n{emulator_tail}"])

    def start_operator(self, identity: str = "op-a", *extra: str, wait: bool = True,
                       clusterwide: bool = False) -> OperatorProcess:
        """Start an operator watching `tenants` and `team-b` (or every namespace); with
        `wait`, return once it serves its first config."""
        scope = () if clusterwide else NAMESPACED_ARGS
        operator = start_operator(self.emulator.kubeconfig, self.directory, identity,
                                  *scope, *COMMON_ARGS, *extra)
        self.operators.append(operator)
        if wait:
            wait_for(lambda: not operator.running or "config revision" in operator.logs(), 20,
                     f"operator {identity} to serve its first config", self.diagnose)
            assert operator.running, self.diagnose()
        return operator


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    emulator = start_emulator(tmp_path / "kube", namespaces=NAMESPACES)
    api = KubeAPI(emulator.url)
    cluster = Cluster(emulator, api, tmp_path)
    try:
        yield cluster
    finally:
        codes = {op.identity: op.stop() for op in cluster.operators if not op.killed}
        api.close()
        emulator.stop()
    crashed = {who: code for who, code in codes.items() if code not in (0, -15)}
    assert not crashed, f"operators exited abnormally: {crashed}\n{cluster.diagnose()}"


@pytest.fixture
def operator(cluster: Cluster) -> OperatorProcess:
    """One operator (the usual case), already serving."""
    return cluster.start_operator()


@pytest.fixture
def waiter(cluster: Cluster) -> Callable[..., object]:
    """`wait_for` with the cluster's logs attached to every timeout."""
    def wait(probe: Callable[[], object], what: str, timeout: float = 10.0) -> object:
        return wait_for(probe, timeout, what, cluster.diagnose)
    return wait
