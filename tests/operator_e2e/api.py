"""What the tests use to look at the emulated cluster: a small synchronous HTTP client, bounded
waits, the operator as a subprocess, and the gateway's view of the rendered config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tollgate.gateway.config.loader import ConfigError, read_config
from tollgate.gateway.config.models import GatewayConfig

__all__ = [
    "CONFIG_NAME",
    "TARGET_NAMESPACE",
    "KubeAPI",
    "OperatorProcess",
    "condition",
    "served_config",
    "start_operator",
    "wait_for",
]

T = TypeVar("T")
CONFIG_NAME = "tollgate-gateway-config"
TARGET_NAMESPACE = "tollgate-system"
REPO = Path(__file__).resolve().parents[2]

_PLURALS = {
    ("tollgate.dev/v1alpha1", "VirtualKey"): "virtualkeys",
    ("tollgate.dev/v1alpha1", "ProviderCredential"): "providercredentials",
    ("v1", "Secret"): "secrets",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Event"): "events",
    ("coordination.k8s.io/v1", "Lease"): "leases",
}
VIRTUAL_KEY = ("tollgate.dev/v1alpha1", "VirtualKey")
PROVIDER_CREDENTIAL = ("tollgate.dev/v1alpha1", "ProviderCredential")
SECRET = ("v1", "Secret")
CONFIG_MAP = ("v1", "ConfigMap")
EVENT = ("v1", "Event")
LEASE = ("coordination.k8s.io/v1", "Lease")


def _path(kind: tuple[str, str], namespace: str | None, name: str | None = None,
          subresource: str | None = None) -> str:
    api_version = kind[0]
    root = f"/apis/{api_version}" if "/" in api_version else "/api/v1"
    parts = [root]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(_PLURALS[kind])
    parts += [p for p in (name, subresource) if p]
    return "/".join(parts)


class KubeAPI:
    """Just enough of the Kubernetes API for assertions and for driving the operator."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10.0)

    def close(self) -> None:
        self.client.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise AssertionError(f"{response.request.method} {response.request.url} → "
                                 f"{response.status_code}: {response.text}")
        return response.json()

    def get(self, kind: tuple[str, str], namespace: str | None, name: str
            ) -> dict[str, Any] | None:
        response = self.client.get(_path(kind, namespace, name))
        return None if response.status_code == 404 else dict(self._check(response))

    def list(self, kind: tuple[str, str], namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else {}
        return list(self._check(self.client.get(_path(kind, namespace), params=params))["items"])

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        kind = (str(body["apiVersion"]), str(body["kind"]))
        clean = {**body, "metadata": {k: v for k, v in body["metadata"].items()
                                      if k in ("name", "namespace", "labels", "annotations")}}
        namespace = body["metadata"].get("namespace")
        return dict(self._check(self.client.post(_path(kind, namespace), json=clean)))

    def patch(self, kind: tuple[str, str], namespace: str | None, name: str,
              patch: Mapping[str, Any]) -> dict[str, Any]:
        response = self.client.patch(_path(kind, namespace, name), json=patch,
                                     headers={"Content-Type": "application/merge-patch+json"})
        return dict(self._check(response))

    def delete(self, kind: tuple[str, str], namespace: str | None, name: str) -> None:
        response = self.client.delete(_path(kind, namespace, name))
        if response.status_code != 404:
            self._check(response)


def wait_for(probe: Callable[[], T | None], timeout: float, what: str,
             diagnose: Callable[[], str] | None = None, interval: float = 0.02) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            extra = f"\n--- diagnostics ---\n{diagnose()}" if diagnose is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: "
                                 f"{last!r}{extra}")
        time.sleep(interval)


def condition(body: Mapping[str, Any] | None, type_: str = "Ready") -> dict[str, Any] | None:
    for item in ((body or {}).get("status") or {}).get("conditions") or ():
        if item.get("type") == type_:
            return dict(item)
    return None


def served_config(api: KubeAPI, name: str = CONFIG_NAME,
                  namespace: str = TARGET_NAMESPACE) -> tuple[GatewayConfig, str] | None:
    """What a gateway pod would load from the ConfigMaps now (None: missing or mid-update):
    every part written to a folder, read with the gateway's own `read_config`."""
    maps = api.list(CONFIG_MAP, namespace, label_selector=f"tollgate.dev/config={name}")
    if not maps:
        return None
    with tempfile.TemporaryDirectory() as folder:
        for body in maps:
            for key, text in (body.get("data") or {}).items():
                Path(folder, key).write_text(text)
        try:
            return read_config(folder)
        except ConfigError:
            return None


@dataclass
class OperatorProcess:
    identity: str
    log_path: Path
    process: subprocess.Popen[bytes]
    killed: bool = False

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to release the Lease."""
        self.killed = True
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as Kubernetes does; SIGKILL only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_operator(kubeconfig: Path, directory: Path, identity: str, *args: str
                   ) -> OperatorProcess:
    """`python -m tollgate.operator` against the emulator, logging to `directory`."""
    log_path = directory / f"operator-{identity}.log"
    command = [sys.executable, "-m", "tollgate.operator", "--identity", identity, *args]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
    env.pop("POD_NAME", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   env=env)
    return OperatorProcess(identity, log_path, process)
