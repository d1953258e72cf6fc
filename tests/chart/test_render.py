"""The chart lints, renders and passes the API server's schemas with Helm 4 and Helm 3; values
outside values.schema.json and contradictory values fail with a message naming the value."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.tools import CHART, HELM, HELM3, NAMESPACE, RELEASE, VALUES, helm, render, set_json

PROFILES = {
    "defaults": (),
    "all-features": ("all-features.yaml",),
    "embedded": ("embedded.yaml",),
}
HELMS = {"helm4": HELM, "helm3": HELM3}
KUBERNETES = ["1.30", "1.37"]
# Kinds with no schema in kubernetes-validate (CRDs of other projects and our own): their
# shape is asserted by the tests that own them.
NOT_BUILT_IN = {
    "HTTPRoute", "PodMonitor", "PrometheusRule", "ServiceMonitor", "VirtualKey",
    "ProviderCredential",
}


@pytest.mark.parametrize("binary", HELMS.values(), ids=HELMS.keys())
@pytest.mark.parametrize("profile", PROFILES, ids=str)
def test_helm_lint_strict_passes(profile: str, binary: Path) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in PROFILES[profile]:
        args += ["-f", str(VALUES / path)]
    result = helm(*args, binary=binary)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("binary", HELMS.values(), ids=HELMS.keys())
@pytest.mark.parametrize("profile", PROFILES, ids=str)
def test_helm_3_and_4_render_the_same_objects(profile: str, binary: Path) -> None:
    rendered = render(*PROFILES[profile], binary=binary)
    reference = render(*PROFILES[profile], binary=HELM)
    assert rendered.objects == reference.objects


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("profile", PROFILES, ids=str)
def test_every_built_in_object_is_valid_for_kubernetes(profile: str, version: str) -> None:
    checked = 0
    for obj in render(*PROFILES[profile]).objects:
        if obj["kind"] in NOT_BUILT_IN:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at "
                        f"{'.'.join(map(str, exc.path))}")
        checked += 1
    assert checked >= 10


def test_the_validator_is_not_vacuous() -> None:
    """Negative control: a misspelt field in a rendered Deployment is caught."""
    deployment: dict[str, Any] = render().one("Deployment", "-gateway")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37", strict=True)


def test_every_object_carries_the_release_labels_and_namespace() -> None:
    for obj in render("all-features.yaml").objects:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == RELEASE, obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/part-of") == "tollgate"
        assert labels.get("team") == "platform"  # commonLabels
        cluster_scoped = obj["kind"] in {"CustomResourceDefinition", "ClusterRole",
                                         "ClusterRoleBinding"}
        if not cluster_scoped and obj["kind"] not in {"Role", "RoleBinding"}:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def test_names_stay_within_63_characters_and_keep_their_component_suffix() -> None:
    long_name = "x" * 70
    rendered = render(sets=[set_json("fullnameOverride", long_name[:63])])
    names = {o["metadata"]["name"] for o in rendered.objects
             if o["kind"] != "CustomResourceDefinition"}
    assert all(len(name) <= 63 for name in names), sorted(names)
    assert any(name.endswith("-gateway") for name in names)
    assert any(name.endswith("-operator") for name in names)


# --- values that must fail, and how -----------------------------------------------------------

SCHEMA_VIOLATIONS = {
    "typo-top-level": (set_json("gatway", {"replicaCount": 3}), "gatway"),
    "typo-nested": (set_json("gateway.replicas", 3), "replicas"),
    "wrong-type": (set_json("gateway.replicaCount", "three"), "replicaCount"),
    "bad-enum": (set_json("store.mode", "memcached"), "mode"),
    "bad-log-level": (set_json("gateway.logLevel", "verbose"), "logLevel"),
    "privileged-port": (set_json("gateway.port", 80), "port"),
    "bad-namespace": (set_json("operator.watchNamespaces", ["Tenants"]), "watchNamespaces"),
}


@pytest.mark.parametrize("binary", HELMS.values(), ids=HELMS.keys())
@pytest.mark.parametrize("case", SCHEMA_VIOLATIONS, ids=str)
def test_a_value_outside_the_schema_fails_helm_template(case: str, binary: Path) -> None:
    item, field = SCHEMA_VIOLATIONS[case]
    result = helm("template", RELEASE, str(CHART), "--set-json", item, binary=binary)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


CONTRADICTIONS = {
    "embedded-store-with-replicas": (
        [set_json("store.mode", "embedded")],
        "store.mode 'embedded' keeps budgets and rate limits in each gateway pod"),
    "embedded-store-with-autoscaling": (
        [set_json("store.mode", "embedded"), set_json("gateway.replicaCount", 1),
         set_json("gateway.autoscaling.enabled", True)],
        "set gateway.replicaCount to 1 and gateway.autoscaling.enabled to false"),
    "external-without-url": (
        [set_json("store.mode", "external")],
        "store.external.url is required when store.mode is 'external'"),
    "password-in-url": (
        [set_json("store.mode", "external"),
         set_json("store.external.url", "redis://:hunter2@redis:6379/0")],
        "store.external.url must not contain a password"),
    "ca-without-tls": (
        [set_json("store.mode", "external"), set_json("store.external.url", "redis://redis:6379"),
         set_json("store.external.tls.caSecret", {"name": "ca", "key": "ca.crt"})],
        "does not start with rediss://"),
    "external-settings-unused": (
        [set_json("store.external.url", "rediss://redis:6380")],
        "store.external.* is set but store.mode is \"evaluation\""),
    "grace-period-shorter-than-drain": (
        [set_json("gateway.drainSeconds", 60)],
        "gateway.terminationGracePeriodSeconds (45) must be greater than"),
    "autoscaling-min-above-max": (
        [set_json("gateway.autoscaling", {"enabled": True, "minReplicas": 5, "maxReplicas": 2})],
        "minReplicas must not be greater than gateway.autoscaling.maxReplicas"),
    "sa-name-required": (
        [set_json("gateway.serviceAccount.create", False)],
        "gateway.serviceAccount.name is required"),
    "ingress-without-hosts": (
        [set_json("ingress.enabled", True)], "ingress.hosts must list at least one host"),
    "httproute-without-parents": (
        [set_json("httpRoute.enabled", True)], "httpRoute.parentRefs must name at least one"),
}


@pytest.mark.parametrize("case", CONTRADICTIONS, ids=str)
def test_contradictory_values_fail_with_a_clear_message(case: str) -> None:
    items, message = CONTRADICTIONS[case]
    args = ["template", RELEASE, str(CHART)]
    for item in items:
        args += ["--set-json", item]
    result = helm(*args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- NOTES.txt ---------------------------------------------------------------------------------


def notes(*args: str) -> str:
    result = helm("install", "--dry-run=client", RELEASE, str(CHART), "--namespace", NAMESPACE,
                  *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_the_notes_walk_through_a_first_key_that_the_cluster_would_accept() -> None:
    from tests.support.crdvalidate import validator_for
    from tollgate.operator.keys import TOKEN_KEY, generated_secret_name

    text = notes()
    manifests = [yaml.safe_load(textwrap.dedent(block))
                 for block in re.findall(r"<<'YAML'\n(.*?)\n  YAML", text, re.S)]
    kinds = [m["kind"] for m in manifests]
    assert kinds == ["ProviderCredential", "VirtualKey"]
    for manifest in manifests:
        plural = {"VirtualKey": "virtualkeys", "ProviderCredential": "providercredentials"}
        assert validator_for(plural[manifest["kind"]]).validate(manifest) == []
    key = manifests[1]["metadata"]["name"]
    assert f"get secret {generated_secret_name(key)} -o jsonpath='{{.data.{TOKEN_KEY}}}'" in text
    assert 'base_url="http://127.0.0.1:8080/v1"' in text
    assert "WARNING: store.mode is \"evaluation\"" in text


def test_the_notes_follow_the_values() -> None:
    text = notes("-f", str(VALUES / "all-features.yaml"))
    assert 'base_url="https://llm.example.com/v1"' in text
    assert "WARNING" not in text
    assert "namespace: tenants" in text
