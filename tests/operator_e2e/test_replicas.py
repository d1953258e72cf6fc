"""Several operator replicas, one active: the coordination.k8s.io Lease decides which."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.operator.objects import provider_credential, secret, virtual_key
from tests.operator_e2e.api import (
    CONFIG_MAP,
    CONFIG_NAME,
    EVENT,
    LEASE,
    TARGET_NAMESPACE,
    VIRTUAL_KEY,
    KubeAPI,
    condition,
    served_config,
)
from tests.operator_e2e.conftest import Cluster
from tests.support.net import free_port

Wait = Callable[..., Any]


def _holder(api: KubeAPI) -> str | None:
    lease = api.get(LEASE, TARGET_NAMESPACE, "tollgate-operator") or {}
    return (lease.get("spec") or {}).get("holderIdentity")


def _rendered_by(api: KubeAPI) -> str | None:
    part = api.get(CONFIG_MAP, TARGET_NAMESPACE, f"{CONFIG_NAME}-0") or {}
    return ((part.get("metadata") or {}).get("annotations") or {}).get(
        "tollgate.dev/rendered-by")


def _budget(api: KubeAPI, key_id: str) -> str | None:
    served = served_config(api)
    key = next((k for k in served[0].virtual_keys if k.id == key_id), None) if served else None
    return key.budget.max_usd if key is not None and key.budget is not None else None


def test_only_the_lease_holder_renders_and_a_standby_takes_over(
        cluster: Cluster, waiter: Wait) -> None:
    api = cluster.api
    a = cluster.start_operator("op-a")
    probe = f"http://127.0.0.1:{free_port()}/healthz"
    b = cluster.start_operator("op-b", "--liveness", probe, wait=False)
    waiter(lambda: "standing by" in b.logs(), "op-b standing by")
    assert _holder(api) == "op-a"
    # A standby is alive: its liveness probe must not get it restarted.
    assert httpx.get(probe, timeout=5).json() == {"standby": True}

    api.create(secret("openai-api-key", TARGET_NAMESPACE, apiKey="sk"))
    api.create(provider_credential("openai", TARGET_NAMESPACE))
    api.create(virtual_key("acme", "tenants", allowedProviders=["openai"],
                           budget={"maxUSD": "10"}))
    waiter(lambda: condition(api.get(VIRTUAL_KEY, "tenants", "acme")), "acme has conditions")
    waiter(lambda: _budget(api, "tenants.acme") == "10", "acme served")
    assert _rendered_by(api) == "op-a"
    reporters = {e.get("reportingInstance") for e in api.list(EVENT, "tenants")}
    assert reporters == {"op-a"}
    assert "config revision" not in b.logs()  # the standby never rendered ...
    assert "watching" not in b.logs()         # ... nor even started kopf

    # A crash: op-a cannot release the Lease; op-b waits it out (3 s) and takes over.
    a.kill()
    crashed_at = time.monotonic()
    waiter(lambda: _holder(api) == "op-b", "op-b to take the expired Lease", timeout=10)
    takeover = time.monotonic() - crashed_at
    # Not at once (the Lease had to expire), and not much later than its 3 s either.
    assert 1.0 <= takeover <= 8.0, f"takeover after a crash took {takeover:.1f} s"
    api.patch(VIRTUAL_KEY, "tenants", "acme", {"spec": {"budget": {"maxUSD": "20"}}})
    waiter(lambda: _budget(api, "tenants.acme") == "20", "op-b rendering the change")
    assert _rendered_by(api) == "op-b"
    assert httpx.get(probe, timeout=5).status_code == 200  # now kopf's own probe

    # A clean stop: op-b releases the Lease, and op-c takes over at once.
    c = cluster.start_operator("op-c", wait=False)
    waiter(lambda: "standing by" in c.logs(), "op-c standing by")
    assert b.stop() == 0
    stopped_at = time.monotonic()
    waiter(lambda: _holder(api) == "op-c", "op-c to take the released Lease")
    assert time.monotonic() - stopped_at < 2.0
    api.patch(VIRTUAL_KEY, "tenants", "acme", {"spec": {"budget": {"maxUSD": "30"}}})
    waiter(lambda: _budget(api, "tenants.acme") == "30", "op-c rendering the change")
    assert _rendered_by(api) == "op-c"
    assert "lost the Lease" not in a.logs() + b.logs() + c.logs()
