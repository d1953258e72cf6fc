"""deploy/: the kustomize base is the chart's current output and the overlay builds; the Argo CD
applications and health checks behave; the samples cover every provider type and pass
admission; the Dockerfile matches the chart's assumptions."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.tools import HELM, ROOT, kubectl, render, require
from tests.support.crdvalidate import validator_for
from tollgate.operator.cli import load_manifests
from tollgate.operator.models import ProviderType

DEPLOY = ROOT / "deploy"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kustomize_generate",
                                                  DEPLOY / "kustomize" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(path: Path) -> list[dict[str, Any]]:
    result = kubectl("kustomize", str(path))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# --- kustomize --------------------------------------------------------------------------------


def test_the_kustomize_base_is_the_charts_current_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM", require(HELM))
    assert load_generator().main(["--check"]) == 0, "run `python deploy/kustomize/generate.py`"


def test_the_base_differs_from_the_chart_only_in_helms_bookkeeping() -> None:
    base = build(DEPLOY / "kustomize" / "base")
    chart = render(sets=()).objects  # tools.RELEASE differs: compare shapes, not names
    assert sorted(o["kind"] for o in base) == sorted(o["kind"] for o in chart)
    for obj in base:
        labels = obj["metadata"].get("labels", {})
        assert "helm.sh/chart" not in labels
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize"


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_the_example_overlay_builds_and_is_valid(version: str) -> None:
    objects = build(DEPLOY / "kustomize" / "overlays" / "example")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "tollgate-redis") not in kinds  # deleted: external Redis instead
    assert ("Deployment", "tollgate-gateway") in kinds
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition" and obj["apiVersion"].startswith("tollgate"):
            continue
        kubernetes_validate.validate(obj, version, strict=True)
    gateway = next(o for o in objects if o["metadata"]["name"] == "tollgate-gateway"
                   and o["kind"] == "Deployment")
    assert gateway["spec"]["replicas"] == 3
    assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "ghcr.io/tollgate-dev/tollgate:0.1.0"
    base = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["base.yaml"]
    assert yaml.safe_load(base)["store"]["url"].startswith("rediss://")


def test_the_samples_build_as_a_tenants_folder() -> None:
    objects = build(DEPLOY / "samples" / "tenants")
    assert {o["kind"] for o in objects} == {"VirtualKey"}


# --- Argo CD ----------------------------------------------------------------------------------


def applications() -> dict[str, dict[str, Any]]:
    apps = {}
    argocd = DEPLOY / "argocd"
    for path in [argocd / "root.yaml", *sorted((argocd / "apps").glob("*.yaml"))]:
        app = yaml.safe_load(path.read_text())
        assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
        apps[app["metadata"]["name"]] = app
    return apps


def test_argo_cd_syncs_the_platform_before_the_tenants() -> None:
    apps = applications()
    wave = {name: int(app["metadata"].get("annotations", {}).get(
        "argocd.argoproj.io/sync-wave", "0")) for name, app in apps.items()}
    assert wave["tollgate"] < wave["tollgate-tenants"]
    assert apps["tollgate-root"]["spec"]["source"]["path"] == "deploy/argocd/apps"
    for name, app in apps.items():
        path = ROOT / app["spec"]["source"]["path"]
        assert path.is_dir(), f"{name}: {path} does not exist"
    tenant_options = apps["tollgate-tenants"]["spec"]["syncPolicy"]["syncOptions"]
    assert "SkipDryRunOnMissingResource=true" in tenant_options


def test_the_platform_apps_values_are_valid_chart_values(tmp_path: Path) -> None:
    values = applications()["tollgate"]["spec"]["source"]["helm"]["valuesObject"]
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    from tests.chart.tools import CHART, helm

    result = helm("template", "tollgate", str(CHART), "-f", str(path))
    assert result.returncode == 0, result.stderr


LuaHealth = dict[str, str]


@pytest.fixture(scope="module")
def health_checks() -> dict[str, Any]:
    lupa = pytest.importorskip("lupa.lua51", reason="the Lua runtime `lupa` is not installed")
    (cm,) = build(DEPLOY / "argocd" / "health")
    assert cm["kind"] == "ConfigMap" and cm["metadata"] == {
        **cm["metadata"], "name": "argocd-cm", "namespace": "argocd"}
    prefix = "resource.customizations.health."

    def runner(script: str):  # type: ignore[no-untyped-def]
        def run(obj: dict[str, Any]) -> LuaHealth:
            lua = lupa.LuaRuntime(unpack_returned_tuples=True)
            lua.globals().obj = to_lua(lua, obj)
            result = lua.execute(script)
            return {"status": result["status"], "message": result["message"]}
        return run

    return {key[len(prefix):]: runner(script) for key, script in cm["data"].items()}


def to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def virtual_key(generation: int = 1, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "VirtualKey",
                           "metadata": {"name": "acme", "namespace": "tenants",
                                        "generation": generation}}
    if status:
        obj["status"] = status
    return obj


def ready(status: str, reason: str, message: str, generation: int = 1) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": "2026-11-01T00:00:00Z"}


HEALTH_CASES = {
    "no-status-yet": (virtual_key(), "Progressing", "Waiting for the Tollgate operator"),
    "ready": (virtual_key(conditions=[
        {"type": "BudgetExceeded", "status": "False", "reason": "WithinBudget", "message": "ok"},
        ready("True", "Accepted", "Serving on 3 providers")]),
        "Healthy", "Accepted: Serving on 3 providers"),
    "not-ready": (virtual_key(conditions=[ready(
        "False", "SecretNotFound", "spec.tokenSecretRef: Not found: \"acme-token\"")]),
        "Degraded", "SecretNotFound: spec.tokenSecretRef: Not found: \"acme-token\""),
    "unknown": (virtual_key(conditions=[ready("Unknown", "Reconciling", "Rendering")]),
                "Progressing", "Reconciling: Rendering"),
    "stale-generation": (
        virtual_key(generation=3, conditions=[ready("True", "Accepted", "ok", 2)]),
        "Progressing", "Waiting for the Tollgate operator to process generation 3"),
    "stale-via-status": (virtual_key(generation=2, observedGeneration=1, conditions=[
        {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "old"}]),
        "Progressing", "generation 2"),
}


@pytest.mark.parametrize("kind", ["VirtualKey", "ProviderCredential"])
@pytest.mark.parametrize("case", HEALTH_CASES, ids=str)
def test_argo_cd_health_follows_the_ready_condition(health_checks: dict[str, Any], case: str,
                                                    kind: str) -> None:
    obj, status, message = HEALTH_CASES[case]
    health = health_checks[f"tollgate.dev_{kind}"]({**obj, "kind": kind})
    assert health["status"] == status
    assert message in health["message"]


def test_argo_cd_application_health_is_passed_through(health_checks: dict[str, Any]) -> None:
    check = health_checks["argoproj.io_Application"]
    assert check({"status": {"health": {"status": "Degraded", "message": "boom"}}}) == {
        "status": "Degraded", "message": "boom"}
    assert check({})["status"] == "Progressing"


# --- samples ----------------------------------------------------------------------------------


def sample_objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted((DEPLOY / "samples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("VirtualKey", "ProviderCredential", "Secret"):
                out.append((f"{path.relative_to(DEPLOY)}:{doc['metadata']['name']}", doc))
    return out


def test_there_is_a_sample_for_every_provider_type() -> None:
    types = {doc["spec"]["type"] for _, doc in sample_objects()
             if doc["kind"] == "ProviderCredential"}
    assert types == {str(t) for t in ProviderType}


@pytest.mark.parametrize("name,obj", sample_objects(), ids=[n for n, _ in sample_objects()])
def test_every_sample_passes_admission(name: str, obj: dict[str, Any]) -> None:
    if obj["kind"] == "Secret":
        kubernetes_validate.validate(obj, "1.37", strict=True)
        return
    plural = {"VirtualKey": "virtualkeys", "ProviderCredential": "providercredentials"}[obj["kind"]]
    assert validator_for(plural).validate(obj) == []


def test_the_samples_cross_references_resolve_offline() -> None:
    """`tollgate validate` finds nothing wrong: every provider type is served, and only the
    tokens the operator generates in the cluster are pending."""
    from tollgate.operator.render import RenderOptions
    from tollgate.operator.render import render as render_config

    found = load_manifests(DEPLOY / "samples")
    assert found.errors == []
    rendered = render_config(found.virtual_keys, found.provider_credentials, found.secrets,
                             RenderOptions(shared_namespaces=("tollgate-system",),
                                           secrets_complete=False))
    reasons = {str(p.reason) for p in rendered.problems}
    assert reasons <= {"TokenPending"}, rendered.problems
    assert all(report.rendered for ref, report in rendered.reports.items()
               if ref.kind == "ProviderCredential"), rendered.reports


# --- the image --------------------------------------------------------------------------------


def dockerfile() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    return [line for line in re.sub(r"\\\n", " ", text).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_runs_tollgate_as_the_charts_user() -> None:
    import json

    lines = dockerfile()
    assert lines[0] == "FROM python:3.11-slim"
    assert "USER 10001:10001" in lines
    entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
    assert json.loads(entry.split(None, 1)[1]) == ["tollgate"]
    cmd = json.loads(next(line for line in lines if line.startswith("CMD")).split(None, 1)[1])
    gateway = render().one("Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]
    config = gateway["args"][gateway["args"].index("--config") + 1]
    assert cmd[:3] == ["gateway", "--config", config]
    assert any("pip install /src" in line for line in lines)


def test_the_image_ships_every_python_package() -> None:
    """`pip install .` installs only the packages pyproject.toml lists: a package folder missing
    from the list is missing from the image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    for distribution, folder in project["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            package = ".".join([distribution, *relative.parts])
            assert package in listed, f"{package} is missing from [tool.setuptools] packages"
