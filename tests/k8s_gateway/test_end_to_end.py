"""The whole path, as a platform team walks it: the chart's CRDs and a tenant's manifests
applied with the real kubectl, the operator and a gateway (`--watch-configmaps`) running
against the emulated API server, a request served with the official openai SDK, and the spend
appearing on the VirtualKey in `kubectl get vk`."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI

from tests.fakes.openai_upstream import FakeOpenAI
from tests.k8s_gateway.support import (
    CONFIG_NAME,
    FLAT_MODEL,
    NAMESPACE,
    KubeGateway,
    start_kube_gateway,
)
from tests.operator_e2e.api import SECRET, KubeAPI, OperatorProcess, start_operator, wait_for
from tests.support.kmock_server import start_emulator

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"
TOKEN = "tg-e2e-3f9c1d7a"


@pytest.fixture(scope="module")
def tools() -> Path:
    """helm and kubectl from scripts/fetch-k8s-tools.sh (fetched here if `make test` has not)."""
    if not (TOOLS / "kubectl").exists() or not (TOOLS / "helm").exists():
        subprocess.run(["bash", str(REPO / "scripts" / "fetch-k8s-tools.sh")], check=True,
                       timeout=300, cwd=REPO)
    return TOOLS


def _tenant(upstream: FakeOpenAI) -> list[dict[str, object]]:
    return [
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "fake-llm-key", "namespace": "tenants"},
         "stringData": {"apiKey": "sk-e2e-not-a-real-key"}},
        {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ProviderCredential",
         "metadata": {"name": "fake-llm", "namespace": "tenants"},
         "spec": {"type": "OpenAICompatible", "baseURL": upstream.base_url,
                  "secretRef": {"name": "fake-llm-key", "key": "apiKey"},
                  "models": [FLAT_MODEL]}},
        {"apiVersion": "tollgate.dev/v1alpha1", "kind": "VirtualKey",
         "metadata": {"name": "shop-prod", "namespace": "tenants"},
         "spec": {"customerId": "shop",
                  "tokenSHA256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                  "budget": {"maxUSD": "5", "period": "Monthly"},
                  "allowedProviders": ["fake-llm"]}},
    ]


def test_kubectl_apply_to_a_request_to_spend_on_the_virtualkey(
        tmp_path: Path, tools: Path, upstream: FakeOpenAI) -> None:
    nothing = tmp_path / "no-crds.yaml"  # an empty --crd list would mean the default ones
    nothing.write_text("")
    emulator = start_emulator(tmp_path / "kube", namespaces=("tenants",), crds=(nothing,))
    env = {**os.environ, "KUBECONFIG": str(emulator.kubeconfig)}

    def kubectl(*args: str) -> str:
        result = subprocess.run([str(tools / "kubectl"), "--cache-dir", str(tmp_path / "cache"),
                                 *args], capture_output=True, text=True, env=env, timeout=30)
        assert result.returncode == 0, f"kubectl {args}: {result.stdout}{result.stderr}"
        return result.stdout

    api = KubeAPI(emulator.url)
    gateways: list[KubeGateway] = []
    operators: list[OperatorProcess] = []

    def diagnose() -> str:
        logs = [f"== {p.identity} ==\n" + "\n".join(p.logs().splitlines()[-25:])
                for p in [*gateways, *operators]]
        return "\n".join([*logs, "== emulator ==", *emulator.logs().splitlines()[-25:]])

    try:
        # 1. The chart's CRDs, rendered by helm, applied by kubectl.
        rendered = subprocess.run(
            [str(tools / "helm"), "template", "tollgate", str(REPO / "charts" / "tollgate"),
             "--namespace", NAMESPACE,
             "--show-only", "templates/crd-tollgate.dev_virtualkeys.yaml",
             "--show-only", "templates/crd-tollgate.dev_providercredentials.yaml"],
            capture_output=True, text=True, timeout=60, check=True).stdout
        (tmp_path / "crds.yaml").write_text(rendered)
        out = kubectl("apply", "--validate=false", "-f", str(tmp_path / "crds.yaml"))
        assert "virtualkeys.tollgate.dev created" in out

        # 2. The operator, its credentials Secret "mounted" here (see below).
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        operator = start_operator(emulator.kubeconfig, tmp_path, "op-e2e", "--namespace",
                                  "tenants", "--lease-seconds", "3", "--credentials-mount-path",
                                  str(credentials))
        operators.append(operator)

        # 3. The tenant's manifests.
        (tmp_path / "tenant.yaml").write_text(yaml.safe_dump_all(_tenant(upstream)))
        out = kubectl("apply", "--validate=false", "-f", str(tmp_path / "tenant.yaml"))
        assert "virtualkey.tollgate.dev/shop-prod created" in out
        kubectl("wait", "--for=condition=Ready", "-n", "tenants", "vk/shop-prod",
                "pc/fake-llm", "--timeout=30s")

        # The kubelet's part: the credentials Secret the operator wrote, as files.
        secret = wait_for(lambda: api.get(SECRET, NAMESPACE, f"{CONFIG_NAME}-credentials"),
                          15, "the credentials Secret", diagnose)
        for name, value in (secret.get("data") or {}).items():
            (credentials / name).write_bytes(base64.b64decode(value))

        # 4. A gateway watching the operator's ConfigMaps (its mounted copy left empty).
        gateway = start_kube_gateway(tmp_path, emulator.kubeconfig, "gw-e2e",
                                     tmp_path / "mounted", interval=1.0, lease_seconds=3.0)
        gateways.append(gateway)

        # 5. The application's request, with the official SDK and the tenant's key.
        upstream.set_usage(prompt_tokens=4, completion_tokens=7)
        with OpenAI(base_url=gateway.base_url, api_key=TOKEN, max_retries=0,
                    timeout=10) as client:
            reply = client.chat.completions.create(
                model=FLAT_MODEL, messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content == "Echo: hello"
        assert upstream.requests_to("/v1/chat/completions")[-1].bearer == "sk-e2e-not-a-real-key"

        # 6. The spend on the VirtualKey, as `kubectl get vk` shows it. (The model has no
        # price: the operator offers no way to price an OpenAICompatible model, so what is
        # spent is zero; the request shows in the usage counts.)
        def published() -> str:
            return kubectl("get", "vk", "shop-prod", "-n", "tenants", "-o",
                           "jsonpath={.status.spend.spentUSD}/{.status.usage.requests}")

        wait_for(lambda: published() == "0.00/1", 20, "status.spend and usage on the "
                 "VirtualKey", diagnose, interval=0.3)
        rows = [line.split() for line in kubectl("get", "vk", "-n", "tenants").splitlines()]
        assert rows[0] == ["NAME", "CUSTOMER", "BUDGET", "SPENT", "REMAINING", "READY", "AGE"]
        assert rows[1][:6] == ["shop-prod", "shop", "5", "0.00", "5.00", "True"]
        vk = yaml.safe_load(kubectl("get", "vk", "shop-prod", "-n", "tenants", "-o", "yaml"))
        kinds = {c["type"]: c for c in vk["status"]["conditions"]}
        assert kinds["Ready"]["status"] == "True"  # the operator's, kept
        assert kinds["BudgetExceeded"]["status"] == "False"
        assert kinds["ConfigInForce"]["status"] == "True"
        assert vk["status"]["servedConfigRevision"] == vk["status"]["configRevision"]
        assert vk["status"]["usage"]["lastUsedAt"].endswith("Z")
        assert re.fullmatch(r"\d{4}-\d{2}", vk["status"]["spend"]["period"])  # Monthly
        assert httpx.get(gateway.url + "/readyz", timeout=2).json()["configRevision"] == \
            vk["status"]["configRevision"]
    finally:
        for process in [*gateways, *operators]:
            process.stop()
        api.close()
        emulator.stop()
