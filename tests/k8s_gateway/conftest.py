"""Fixtures: a fresh emulated API server per test (its own process, tests/support/
kmock_server.py), a recording proxy in front of it for the gateways, gateway processes run with
`--watch-configmaps`, and — where a test needs it — the operator, as in tests/operator_e2e."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, running_fake_openai
from tests.k8s_gateway.proxy import ApiProxy, running_proxy
from tests.k8s_gateway.support import KubeGateway, start_kube_gateway
from tests.operator_e2e.api import KubeAPI, OperatorProcess, start_operator, wait_for
from tests.support.kmock_server import EmulatorProcess, start_emulator, write_kubeconfig
from tests.support.redis import RedisServer

NAMESPACES = ("tenants",)


@dataclass
class Cluster:
    emulator: EmulatorProcess
    api: KubeAPI
    proxy: ApiProxy
    directory: Path
    gateway_kubeconfig: Path
    gateways: list[KubeGateway] = field(default_factory=list)
    operators: list[OperatorProcess] = field(default_factory=list)

    def diagnose(self) -> str:
        sections = [f"== gateway {g.identity} ==\n" + "\n".join(g.logs().splitlines()[-25:])
                    for g in self.gateways]
        sections += [f"== operator {op.identity} ==\n{op.tail(25)}" for op in self.operators]
        sections.append("== emulator ==\n" + "\n".join(self.emulator.logs().splitlines()[-25:]))
        return "\n".join(sections)

    def wait(self, probe: Callable[[], Any], what: str, timeout: float = 10.0,
             interval: float = 0.02) -> Any:
        return wait_for(probe, timeout, what, self.diagnose, interval)

    def start_gateway(self, identity: str, *, direct: bool = False, **kwargs: Any
                      ) -> KubeGateway:
        """A gateway talking to the API through the proxy (or `direct`ly)."""
        kubeconfig = self.emulator.kubeconfig if direct else self.gateway_kubeconfig
        config_dir = kwargs.pop("config_dir", self.directory / f"mounted-{identity}")
        gateway = start_kube_gateway(self.directory, kubeconfig, identity, config_dir,
                                     **kwargs)
        self.gateways.append(gateway)
        return gateway

    def start_operator(self, identity: str = "op-a", *args: str) -> OperatorProcess:
        operator = start_operator(self.emulator.kubeconfig, self.directory, identity,
                                  "--namespace", "tenants", "--lease-seconds", "3", *args)
        self.operators.append(operator)
        self.wait(lambda: not operator.running or "config revision" in operator.logs(),
                  f"operator {identity} to serve its first config", timeout=20)
        assert operator.running, self.diagnose()
        return operator


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    emulator = start_emulator(tmp_path / "kube", namespaces=NAMESPACES)
    api = KubeAPI(emulator.url)
    try:
        with running_proxy(emulator.url) as proxy:
            kubeconfig = write_kubeconfig(tmp_path / "gateway-kubeconfig", proxy.url)
            cluster = Cluster(emulator, api, proxy, tmp_path, kubeconfig)
            try:
                yield cluster
            finally:
                codes = {g.identity: g.stop() for g in cluster.gateways}
                codes.update({op.identity: op.stop() for op in cluster.operators
                              if not op.killed})
        crashed = {who: code for who, code in codes.items() if code not in (0, -15)}
        assert not crashed, f"processes exited abnormally: {crashed}\n{cluster.diagnose()}"
    finally:
        api.close()
        emulator.stop()


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeOpenAI]:
    with running_fake_openai() as fake:
        yield fake


@pytest.fixture
def upstream(upstream_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("k8s-redis")) as server:
        yield server
