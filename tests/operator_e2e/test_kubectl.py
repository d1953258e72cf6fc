"""The user's path, with the real kubectl 1.37 binary: apply a folder of manifests, wait for
Ready, read the printer columns, delete."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.operator_e2e.api import CONFIG_NAME, TARGET_NAMESPACE, served_config
from tests.operator_e2e.conftest import Cluster

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = Path(__file__).with_name("manifests")
KUBECTL = REPO / ".tools" / "bin" / "kubectl"


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """The pinned kubectl from scripts/fetch-k8s-tools.sh (the machine's /usr/bin/kubectl is
    unrelated); fetched here only if `make test` has not done it already."""
    if not KUBECTL.exists():
        subprocess.run(["bash", str(REPO / "scripts" / "fetch-k8s-tools.sh")], check=True,
                       timeout=300, cwd=REPO)
    return KUBECTL


def _kubectl(kubectl: Path, cluster: Cluster, *args: str, timeout: float = 30) -> str:
    env = {**os.environ, "KUBECONFIG": str(cluster.emulator.kubeconfig)}
    result = subprocess.run([str(kubectl), *args], capture_output=True, text=True, env=env,
                            timeout=timeout)
    assert result.returncode == 0, (f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                    f"{result.stdout}{result.stderr}\n{cluster.diagnose()}")
    return result.stdout


def _table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_kubectl_applies_waits_lists_and_deletes(cluster: Cluster, operator: object,
                                                 kubectl: Path) -> None:
    out = _kubectl(kubectl, cluster, "apply", "--validate=false", "-f", str(MANIFESTS))
    for created in ("secret/openai-api-key created",
                    "providercredential.tollgate.dev/openai created",
                    "virtualkey.tollgate.dev/acme-prod created",
                    "virtualkey.tollgate.dev/globex created"):
        assert created in out

    out = _kubectl(kubectl, cluster, "wait", "--for=condition=Ready", "-n", "tenants",
                   "vk/acme-prod", "vk/globex", "--timeout=20s")
    assert out.count("condition met") == 2

    rows = _table(_kubectl(kubectl, cluster, "get", "vk", "-n", "tenants"))
    assert rows[0] == ["NAME", "CUSTOMER", "BUDGET", "SPENT", "REMAINING", "READY", "AGE"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["acme-prod"][1:3] == ["acme_corp", "12000"]
    assert by_name["acme-prod"][-2] == "True"
    assert by_name["globex"][1:3] == ["globex", "50.50"]

    served = served_config(cluster.api)
    assert served is not None
    wide = _table(_kubectl(kubectl, cluster, "get", "virtualkeys", "-n", "tenants", "-o", "wide"))
    assert wide[0] == ["NAME", "CUSTOMER", "BUDGET", "PERIOD", "SPENT", "REMAINING", "READY",
                       "REASON", "KEY", "ID", "REVISION", "IN", "FORCE", "AGE"]
    acme = next(row for row in wide if row[0] == "acme-prod")
    assert acme[3:6] == ["Monthly", "True", "Accepted"]  # SPENT, REMAINING empty: no spend yet
    assert "tenants.acme-prod" in acme and served[1] in acme

    out = _kubectl(kubectl, cluster, "get", "tollgate", "-A")
    assert "providercredential.tollgate.dev/openai" in out
    assert "virtualkey.tollgate.dev/acme-prod" in out
    pc = _table(_kubectl(kubectl, cluster, "get", "pc", "-n", TARGET_NAMESPACE))
    assert pc[0][:4] == ["NAME", "TYPE", "SECRET", "READY"]
    assert pc[1][:4] == ["openai", "OpenAI", "openai-api-key", "True"]

    parts = _kubectl(kubectl, cluster, "get", "configmaps", "-n", TARGET_NAMESPACE, "-l",
                     f"tollgate.dev/config={CONFIG_NAME}", "-o", "name")
    assert parts.split() == [f"configmap/{CONFIG_NAME}-0"]
    token = _kubectl(kubectl, cluster, "get", "secret", "tollgate-vk-acme-prod", "-n", "tenants",
                     "-o", "jsonpath={.metadata.ownerReferences[0].name}")
    assert token == "acme-prod"

    out = _kubectl(kubectl, cluster, "delete", "-f", str(MANIFESTS / "tenants.yaml"))
    assert 'virtualkey.tollgate.dev "acme-prod" deleted' in out
    # kubectl returned once the finalizer let go, which happens only after the config dropped
    # the keys.
    served = served_config(cluster.api)
    assert served is not None and served[0].virtual_keys == ()
    assert _kubectl(kubectl, cluster, "get", "vk", "-n", "tenants", "-o", "name") == ""
