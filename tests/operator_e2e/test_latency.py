"""How long from a write to a VirtualKey until the ConfigMap holds the change (the issue's
propagation target is under 5 s to every gateway; this is the operator's share of it).

Two clocks, both reported: the test's own (request sent → a gateway's `read_config` of the
ConfigMaps sees it, polling every 5 ms), and the API server's write log (the VirtualKey's
stored write → the ConfigMap's stored write, same process clock, no polling error).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.operator.objects import provider_credential, secret, virtual_key
from tests.operator_e2e.api import (
    CONFIG_NAME,
    TARGET_NAMESPACE,
    VIRTUAL_KEY,
    KubeAPI,
    served_config,
    wait_for,
)
from tests.operator_e2e.conftest import Cluster

Wait = Callable[..., Any]
ROUNDS = 8


def _budget(api: KubeAPI, key_id: str) -> str | None:
    served = served_config(api)
    key = next((k for k in served[0].virtual_keys if k.id == key_id), None) if served else None
    return key.budget.max_usd if key is not None and key.budget is not None else None


def _server_side(log: str, rounds: int) -> list[float]:
    """For each patch of the VirtualKey: seconds until the next ConfigMap write."""
    lines = [line.split() for line in log.splitlines() if line[:1].isdigit()]
    latencies: list[float] = []
    for i, (stamp, verb, resource, where, *_rest) in enumerate(lines):
        if verb == "patch" and resource == "virtualkeys.tollgate.dev" \
                and where == "tenants/latency":
            for later in lines[i + 1:]:
                if later[2] == "configmaps" and later[3].startswith(
                        f"{TARGET_NAMESPACE}/{CONFIG_NAME}-"):
                    latencies.append(float(later[0]) - float(stamp))
                    break
    return latencies[-rounds:]


def test_a_change_reaches_the_configmap_well_under_five_seconds(
        cluster: Cluster, operator: object, waiter: Wait,
        record_property: Callable[[str, object], None]) -> None:
    api = cluster.api
    api.create(secret("openai-api-key", TARGET_NAMESPACE, apiKey="sk"))
    api.create(provider_credential("openai", TARGET_NAMESPACE))
    api.create(virtual_key("latency", "tenants", allowedProviders=["openai"],
                           budget={"maxUSD": "1"}))
    waiter(lambda: _budget(api, "tenants.latency") == "1", "the key served")

    observed: list[float] = []
    for round_ in range(ROUNDS):
        value = str(100 + round_)

        def served(expected: str = value) -> bool:
            return _budget(api, "tenants.latency") == expected

        started = time.monotonic()
        api.patch(VIRTUAL_KEY, "tenants", "latency", {"spec": {"budget": {"maxUSD": value}}})
        wait_for(served, 5.0, f"budget {value} served", cluster.diagnose, interval=0.005)
        observed.append(time.monotonic() - started)
    server = _server_side(cluster.emulator.logs(), ROUNDS)
    assert len(server) == ROUNDS

    def summary(samples: list[float]) -> str:
        ordered = sorted(samples)
        return (f"median {statistics.median(ordered) * 1000:.0f} ms, "
                f"max {ordered[-1] * 1000:.0f} ms")

    report = (f"apply → ConfigMap over {ROUNDS} rounds: client-observed {summary(observed)}; "
              f"API-server log {summary(server)}")
    print(report)
    record_property("apply_to_configmap_latency", report)
    assert max(observed) < 5.0, report
    # The operator's debounce is 0.1 s quiet / 1 s max; anything near a second means batching
    # or the watch is broken, not just a slow machine.
    if statistics.median(server) > 1.5:
        pytest.fail(f"median server-side latency too high: {report}")
