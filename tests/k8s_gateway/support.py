"""Gateways run for real against the emulated API server: `tollgate gateway --watch-configmaps`
as subprocesses, and the config written as the operator writes it (its own `config_maps()`).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.operator_e2e.api import CONFIG_MAP, KubeAPI
from tests.support.net import free_port, wait_http
from tollgate.operator.render import CONFIG_PART_KEY, canonical_json, config_maps, shard

__all__ = [
    "CONFIG_NAME",
    "FLAT_MODEL",
    "NAMESPACE",
    "PROVIDER_KEY_ENV",
    "KubeGateway",
    "config_map_bodies",
    "gateway_config",
    "key_entry",
    "put_config_maps",
    "start_kube_gateway",
    "token_for",
    "virtual_key",
    "write_parts",
]

REPO = Path(__file__).resolve().parents[2]
CONFIG_NAME = "tollgate-gateway-config"
NAMESPACE = "tollgate-system"
FLAT_MODEL = "flat-model"
PROVIDER_KEY_ENV = "K8S_GATEWAY_FAKE_KEY"


def token_for(key_id: str) -> str:
    return f"tg-k8s-{key_id}-5b2c"


def key_entry(key_id: str, **fields: Any) -> dict[str, Any]:
    digest = hashlib.sha256(token_for(key_id).encode()).hexdigest()
    return {"id": key_id, "tokenSHA256": digest, **fields}


def gateway_config(upstream: str, keys: list[dict[str, Any]], *,
                   store_url: str | None = None) -> dict[str, Any]:
    """A GatewayConfig as the operator renders it (with its `revision`): one OpenAI-compatible
    provider, the fake upstream, whose `flat-model` costs $0.001 per output token."""
    document: dict[str, Any] = {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "providers": [{"name": "fake", "type": "openai-compatible", "baseURL": upstream,
                       "apiKey": {"env": PROVIDER_KEY_ENV}, "models": [FLAT_MODEL],
                       "timeouts": {"connectSeconds": 1.0, "firstByteSeconds": 5.0,
                                    "totalSeconds": 10.0}}],
        "pricing": [{"provider": "fake", "model": FLAT_MODEL, "inputPerMillionUSD": "0",
                     "outputPerMillionUSD": "1000"}],
        "virtualKeys": keys,
    }
    if store_url is not None:
        document["store"] = {"url": store_url}
    revision = hashlib.sha256(canonical_json(document).encode()).hexdigest()[:16]
    return {"apiVersion": document.pop("apiVersion"), "kind": document.pop("kind"),
            "revision": revision, **document}


def put_config_maps(api: KubeAPI, bodies: list[dict[str, Any]]) -> None:
    """Create or replace each ConfigMap, one after the other, as the operator does."""
    for body in bodies:
        metadata = body["metadata"]
        current = api.get(CONFIG_MAP, metadata["namespace"], metadata["name"])
        if current is None:
            api.create(body)
            continue
        replaced = {**body, "metadata": {**metadata, "resourceVersion":
                                         current["metadata"]["resourceVersion"]}}
        path = f"/api/v1/namespaces/{metadata['namespace']}/configmaps/{metadata['name']}"
        response = api.client.put(path, json=replaced)
        assert response.status_code == 200, response.text


def config_map_bodies(config: Mapping[str, Any], max_bytes: int | None = None
                      ) -> list[dict[str, Any]]:
    if max_bytes is None:
        return config_maps(config, CONFIG_NAME, NAMESPACE)
    return config_maps(config, CONFIG_NAME, NAMESPACE, max_bytes)


def write_parts(directory: Path, config: Mapping[str, Any]) -> None:
    """The parts as the kubelet would mount them (one file each)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("part-*.json"):
        old.unlink()
    parts = shard(config)
    for index, text in enumerate(parts):
        (directory / CONFIG_PART_KEY.format(index=index, count=len(parts))).write_text(text)


def virtual_key(name: str, namespace: str = "tenants") -> dict[str, Any]:
    """A VirtualKey object for the status publisher to write to (no operator needed)."""
    return {"apiVersion": "tollgate.dev/v1alpha1", "kind": "VirtualKey",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"tokenSHA256": key_entry(f"{namespace}.{name}")["tokenSHA256"]}}


@dataclass
class KubeGateway:
    identity: str
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines with this `event`."""
        found = []
        for line in self.logs().splitlines():
            if f'"{event}"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return [f for f in found if f.get("event") == event]

    def revision(self) -> str | None:
        try:
            body = httpx.get(self.url + "/readyz", timeout=2.0).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body.get("configRevision")

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_kube_gateway(directory: Path, kubeconfig: Path, identity: str, config_dir: Path, *,
                       interval: float = 0.5, lease_seconds: float = 4.0,
                       target: str = f"{NAMESPACE}/{CONFIG_NAME}",
                       env: Mapping[str, str] | None = None) -> KubeGateway:
    """`tollgate gateway --watch-configmaps` on a free port; returns once it answers."""
    config_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = directory / f"gateway-{identity}.log"
    command = [sys.executable, "-m", "tollgate.gateway", "gateway", "--config", str(config_dir),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--log-level", "info", "--drain-seconds", "1",
               "--watch-configmaps", target, "--status-interval", str(interval),
               "--status-lease-seconds", str(lease_seconds)]
    full_env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TOLLGATE_IDENTITY": identity,
                PROVIDER_KEY_ENV: "sk-k8s-fake", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("POD_NAME", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   env=full_env)
    gateway = KubeGateway(identity, f"http://127.0.0.1:{port}", log_path, process)
    try:
        wait_http(gateway.url + "/healthz", timeout=30, alive=lambda: process.poll() is None)
    except BaseException:
        gateway.stop()
        raise RuntimeError(f"gateway {identity} did not start:\n{gateway.logs()}") from None
    return gateway
