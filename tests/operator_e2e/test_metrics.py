"""The operator's Prometheus metrics, scraped from a running operator's --metrics-port."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.operator_e2e.conftest import Cluster
from tests.support.net import free_port


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_reconcile_metrics_are_served(cluster: Cluster, waiter) -> None:
    port = free_port()
    cluster.start_operator("op-a", "--metrics-port", str(port))

    def reconciled() -> dict | None:
        samples = _samples(port)
        ok = samples.get(("tollgate_operator_reconciles_total", (("result", "ok"),)), 0)
        return samples if ok > 0 else None

    samples = waiter(reconciled, "a successful reconcile pass counted on /metrics")
    assert samples[("tollgate_operator_reconcile_duration_seconds_count", ())] > 0
    assert any(name == "tollgate_operator_config_info" and value == 1
               for (name, _), value in samples.items())
    assert ("tollgate_operator_resources", (("kind", "VirtualKey"), ("ready", "True"))) \
        in samples
