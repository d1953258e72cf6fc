"""The operator as a black box: resources go in through the API, and the tests look only at what
comes out — ConfigMaps the gateway loads, Secrets, status conditions and Events."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.operator.objects import provider_credential, secret, sha, virtual_key
from tests.operator_e2e.api import (
    CONFIG_MAP,
    CONFIG_NAME,
    EVENT,
    SECRET,
    TARGET_NAMESPACE,
    VIRTUAL_KEY,
    KubeAPI,
    condition,
    served_config,
)
from tests.operator_e2e.conftest import Cluster
from tests.support.kmock_server import EmulatorProcess
from tollgate.gateway.config.models import GatewayConfig, VirtualKeyConfig
from tollgate.operator.keys import token_sha256

Wait = Callable[..., Any]


def _credentials(api: KubeAPI, api_key: str = "sk-live-DO-NOT-LEAK") -> None:
    api.create(secret("openai-api-key", TARGET_NAMESPACE, apiKey=api_key))
    api.create(provider_credential("openai", TARGET_NAMESPACE, models=["gpt-4o", "gpt-4o-mini"]))


def _served_key(api: KubeAPI, key_id: str) -> VirtualKeyConfig | None:
    served = served_config(api)
    if served is None:
        return None
    return next((k for k in served[0].virtual_keys if k.id == key_id), None)


def _ready(api: KubeAPI, name: str, status: str = "True", namespace: str = "tenants",
           generation: int | None = None) -> dict[str, Any] | None:
    body = api.get(VIRTUAL_KEY, namespace, name)
    ready = condition(body)
    if ready is None or ready["status"] != status:
        return None
    if generation is not None and ready.get("observedGeneration") != generation:
        return None
    return body


def _events(api: KubeAPI, namespace: str, name: str) -> list[dict[str, Any]]:
    return [e for e in api.list(EVENT, namespace) if e["involvedObject"]["name"] == name]


def _config_writes(emulator: EmulatorProcess) -> int:
    return sum(1 for line in emulator.logs().splitlines()
               if " configmaps " in line and f" {TARGET_NAMESPACE}/{CONFIG_NAME}-" in line)


def test_applied_resources_render_into_a_config_the_gateway_loads(
        cluster: Cluster, operator: object, waiter: Wait) -> None:
    api = cluster.api
    _credentials(api)
    api.create(virtual_key("acme", "tenants", customerId="acme_corp",
                           budget={"maxUSD": "120", "period": "Monthly"},
                           allowedProviders=["openai"],
                           fallbacks=[{"provider": "openai", "model": "gpt-4o"}]))

    key = waiter(lambda: _served_key(api, "tenants.acme"), "acme in the served config")
    assert key.token_sha256 == sha("tg-tenants-acme")
    assert key.customer_id == "acme_corp"
    assert key.allowed_providers == (f"{TARGET_NAMESPACE}.openai",)
    assert [(f.provider, f.model) for f in key.fallbacks] == [(f"{TARGET_NAMESPACE}.openai",
                                                                "gpt-4o")]
    assert key.budget is not None and key.budget.max_usd == "120"

    body = waiter(lambda: _ready(api, "acme"), "acme Ready=True")
    ready = condition(body)
    assert ready is not None and ready["reason"] == "Accepted"
    assert ready["observedGeneration"] == body["metadata"]["generation"] == 1
    assert body["status"]["observedGeneration"] == 1
    assert body["status"]["keyId"] == "tenants.acme"
    config, revision = served_config(api) or (None, None)
    assert isinstance(config, GatewayConfig)
    assert body["status"]["configRevision"] == revision
    assert {c["type"] for c in body["status"]["conditions"]} == {
        "Ready", "BudgetExceeded", "RateLimited", "Degraded", "SpendAnomaly"}

    # The provider key reaches the credentials Secret, and never a ConfigMap.
    maps = api.list(CONFIG_MAP, TARGET_NAMESPACE)
    assert "sk-live-DO-NOT-LEAK" not in json.dumps(maps)
    credentials = api.get(SECRET, TARGET_NAMESPACE, f"{CONFIG_NAME}-credentials")
    assert credentials is not None
    value = credentials["data"][f"{TARGET_NAMESPACE}.openai.apiKey"]
    assert base64.b64decode(value) == b"sk-live-DO-NOT-LEAK"

    # A spec change is a new generation: rendered, and reported as observed.
    api.patch(VIRTUAL_KEY, "tenants", "acme", {"spec": {"budget": {"maxUSD": "250"}}})
    waiter(lambda: (k := _served_key(api, "tenants.acme")) and k.budget
           and k.budget.max_usd == "250", "the new budget in the served config")
    body = waiter(lambda: _ready(api, "acme", generation=2), "Ready observing generation 2")
    assert body["status"]["observedGeneration"] == 2


def test_invalid_reference_sets_ready_false_naming_the_field_and_posts_an_event(
        cluster: Cluster, operator: object, waiter: Wait) -> None:
    api = cluster.api
    _credentials(api)
    api.create(virtual_key("globex", "tenants", allowedProviders=["openai", "anthropic"],
                           fallbacks=[{"provider": "anthropic", "model": "claude-sonnet-4-6"}]))

    body = waiter(lambda: _ready(api, "globex", status="False"), "globex Ready=False")
    ready = condition(body)
    assert ready is not None
    assert ready["reason"] == "ProviderCredentialNotFound"
    assert 'spec.allowedProviders[1]: Not found: "anthropic"' in ready["message"]
    assert ready["observedGeneration"] == 1
    warning = waiter(lambda: next((e for e in _events(api, "tenants", "globex")
                                   if e["type"] == "Warning"), None), "a Warning event")
    assert warning["reason"] == "ProviderCredentialNotFound"
    assert "spec.allowedProviders[1]" in warning["message"]
    assert warning["involvedObject"]["kind"] == "VirtualKey"
    assert warning["involvedObject"]["uid"] == body["metadata"]["uid"]
    # Narrower than declared, never wider: served with the provider that exists.
    key = waiter(lambda: _served_key(api, "tenants.globex"), "globex served (narrowed)")
    assert key.allowed_providers == (f"{TARGET_NAMESPACE}.openai",)

    # The missing ProviderCredential appears: the key recovers on its own, with an Event.
    api.create(secret("anthropic-api-key", "tenants", apiKey="sk-ant"))
    api.create(provider_credential("anthropic", "tenants", type_="OpenAICompatible",
                                   baseURL="http://127.0.0.1:9/v1", models=["claude-sonnet-4-6"]))
    waiter(lambda: _ready(api, "globex"), "globex Ready=True once the credential exists")
    waiter(lambda: any(e["type"] == "Normal" and e["reason"] == "Accepted"
                       for e in _events(api, "tenants", "globex")), "an Accepted event")


def test_token_secret_is_generated_then_rotated_with_an_overlap_window(
        cluster: Cluster, waiter: Wait) -> None:
    cluster.start_operator("op-a", "--rotation-overlap-seconds", "2")
    api = cluster.api
    _credentials(api)
    created = api.create(virtual_key("initech", "tenants", generated=True,
                                     allowedProviders=["openai"]))

    token_secret = waiter(lambda: api.get(SECRET, "tenants", "tollgate-vk-initech"),
                          "the generated token Secret")
    owner = token_secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "VirtualKey", "initech", created["metadata"]["uid"], True)
    first = base64.b64decode(token_secret["data"]["token"]).decode()
    assert first.startswith("tg-") and len(first) > 40
    key = waiter(lambda: _served_key(api, "tenants.initech"), "initech served")
    assert key.token_sha256 == token_sha256(first)
    assert key.previous_token_sha256 is None
    waiter(lambda: _ready(api, "initech"), "initech Ready=True")

    api.patch(VIRTUAL_KEY, "tenants", "initech",
              {"metadata": {"annotations": {"tollgate.dev/rotate-token": "2026-11-27"}}})
    rotated = waiter(lambda: (s := api.get(SECRET, "tenants", "tollgate-vk-initech"))
                     and "previousToken" in s["data"] and s, "the rotated Secret")
    second = base64.b64decode(rotated["data"]["token"]).decode()
    assert second != first
    assert base64.b64decode(rotated["data"]["previousToken"]).decode() == first
    # During the overlap, both tokens work.
    key = waiter(lambda: (k := _served_key(api, "tenants.initech"))
                 and k.previous_token_sha256 and k, "both hashes in the config")
    assert (key.token_sha256, key.previous_token_sha256) == (token_sha256(second),
                                                             token_sha256(first))
    # After it, only the new one.
    key = waiter(lambda: (k := _served_key(api, "tenants.initech"))
                 and k.previous_token_sha256 is None and k, "the old hash dropped", timeout=10)
    assert key.token_sha256 == token_sha256(second)
    assert "previousToken" not in (api.get(SECRET, "tenants", "tollgate-vk-initech") or {})[
        "data"]
    reasons = {e["reason"] for e in _events(api, "tenants", "initech")}
    assert {"KeySecretCreated", "TokenRotated", "PreviousTokenExpired"} <= reasons
    # The same annotation value again is not a new request.
    api.patch(VIRTUAL_KEY, "tenants", "initech", {"spec": {"customerId": "initech"}})
    waiter(lambda: _ready(api, "initech", generation=2), "generation 2 observed")
    again = api.get(SECRET, "tenants", "tollgate-vk-initech") or {}
    assert base64.b64decode(again["data"]["token"]).decode() == second


def test_deleting_a_key_removes_it_from_the_config_before_the_object_goes(
        cluster: Cluster, operator: object, waiter: Wait) -> None:
    api = cluster.api
    _credentials(api)
    api.create(virtual_key("hooli", "tenants", allowedProviders=["openai"]))
    api.create(virtual_key("pied-piper", "team-b", allowedProviders=["openai"]))
    body = waiter(lambda: _ready(api, "hooli"), "hooli Ready=True")
    assert "tollgate.dev/finalizer" in body["metadata"]["finalizers"]
    waiter(lambda: _served_key(api, "team-b.pied-piper"), "pied-piper served")

    api.delete(VIRTUAL_KEY, "tenants", "hooli")
    waiter(lambda: api.get(VIRTUAL_KEY, "tenants", "hooli") is None, "hooli gone")
    # The finalizer held the object until the config without it was written.
    assert _served_key(api, "tenants.hooli") is None
    assert _served_key(api, "team-b.pied-piper") is not None


def test_unchanged_input_writes_nothing_even_across_a_restart(
        cluster: Cluster, waiter: Wait) -> None:
    first = cluster.start_operator("op-a", "--standalone")
    api = cluster.api
    _credentials(api)
    api.create(virtual_key("umbrella", "tenants", allowedProviders=["openai"]))
    waiter(lambda: _ready(api, "umbrella"), "umbrella Ready=True")
    part = api.get(CONFIG_MAP, TARGET_NAMESPACE, f"{CONFIG_NAME}-0") or {}
    version = part["metadata"]["resourceVersion"]

    # A change the config does not depend on (a label), then a restart on that state.
    api.patch(VIRTUAL_KEY, "tenants", "umbrella", {"metadata": {"labels": {"team": "red"}}})
    waiter(lambda: (b := api.get(VIRTUAL_KEY, "tenants", "umbrella"))
           and b["metadata"].get("labels", {}).get("team") == "red", "the label stored")
    assert first.stop() == 0
    writes_before = _config_writes(cluster.emulator)
    status_before = (api.get(VIRTUAL_KEY, "tenants", "umbrella") or {})["metadata"][
        "resourceVersion"]

    second = cluster.start_operator("op-b", "--standalone")  # returns after its first pass
    assert "serving (already written) config revision" in second.logs()
    assert _config_writes(cluster.emulator) == writes_before
    api.create(virtual_key("marker", "team-b", allowedProviders=["openai"]))
    waiter(lambda: _ready(api, "marker", namespace="team-b"), "a later key served by op-b")
    part = api.get(CONFIG_MAP, TARGET_NAMESPACE, f"{CONFIG_NAME}-0") or {}
    assert part["metadata"]["resourceVersion"] != version  # the new key was written ...
    umbrella = api.get(VIRTUAL_KEY, "tenants", "umbrella") or {}
    # ... but umbrella's status, already right, was not rewritten by the new operator,
    assert umbrella["metadata"]["resourceVersion"] == status_before
    # ... and the restart itself cost exactly one ConfigMap write (for the new key).
    assert _config_writes(cluster.emulator) == writes_before + 1


def test_a_burst_of_changes_is_rendered_in_few_writes(cluster: Cluster, waiter: Wait) -> None:
    cluster.start_operator(clusterwide=True)
    api = cluster.api
    _credentials(api)
    waiter(lambda: (c := served_config(api)) and c[0].providers, "the provider served")
    before = _config_writes(cluster.emulator)
    with ThreadPoolExecutor(max_workers=8) as pool:  # a GitOps sync: many applies at once
        list(pool.map(lambda i: api.create(virtual_key(f"burst-{i:02d}", "tenants",
                                                       allowedProviders=["openai"])),
                      range(25)))
    waiter(lambda: (c := served_config(api)) and len(c[0].virtual_keys) == 25,
           "all 25 keys served")
    writes = _config_writes(cluster.emulator) - before
    assert 1 <= writes <= 4, f"{writes} ConfigMap writes for a burst of 25 creates"


def test_stale_parts_and_edits_behind_its_back_are_repaired(cluster: Cluster,
                                                            waiter: Wait) -> None:
    api = cluster.api
    # A leftover part from a bigger config: not among the parts now, so it must go.
    api.create({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": f"{CONFIG_NAME}-1", "namespace": TARGET_NAMESPACE,
                             "labels": {"tollgate.dev/config": CONFIG_NAME}},
                "data": {"part-0001-of-0002.json": "{}"}})
    cluster.start_operator("op-a", "--resync-seconds", "1")
    waiter(lambda: api.get(CONFIG_MAP, TARGET_NAMESPACE, f"{CONFIG_NAME}-1") is None,
           "the stale part deleted")
    _credentials(api)
    api.create(virtual_key("wonka", "tenants", allowedProviders=["openai"]))
    waiter(lambda: _served_key(api, "tenants.wonka"), "wonka served")

    # Someone edits the rendered ConfigMap and the credentials Secret by hand.
    good = served_config(api)
    assert good is not None
    api.patch(CONFIG_MAP, TARGET_NAMESPACE, f"{CONFIG_NAME}-0",
              {"data": {"part-0000-of-0001.json": "{}"}})
    api.patch(SECRET, TARGET_NAMESPACE, f"{CONFIG_NAME}-credentials",
              {"data": {f"{TARGET_NAMESPACE}.openai.apiKey": None}})
    assert served_config(api) is None
    repaired = waiter(lambda: served_config(api), "the config repaired on the next resync",
                      timeout=10)
    assert repaired[1] == good[1]
    waiter(lambda: f"{TARGET_NAMESPACE}.openai.apiKey" in (
        api.get(SECRET, TARGET_NAMESPACE, f"{CONFIG_NAME}-credentials") or {}).get("data", {}),
        "the credentials Secret repaired")
