"""The Kubernetes API emulator as a process of its own on 127.0.0.1, and its kubeconfig.

kmock ships a pytest fixture but no server command; this is that command. The emulator runs
in its own process (so neither kopf nor a synchronous client in a test ever shares its event
loop), serves the CRDs it is given, and has the namespaces it is told to preload:

    python -m tests.support.kmock_server --crd crds/a.yaml --namespace tenants \
        --ready-file /tmp/port

It writes its port to `--ready-file` once it listens, logs every stored write on stdout (one
line each: wall time, verb, resource, namespace/name, resourceVersion) and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import yaml

from tests.support.kube_emulator import KubeEmulator, Target

__all__ = ["EmulatorProcess", "build_emulator", "main", "start_emulator", "write_kubeconfig"]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CRDS = tuple(sorted((REPO / "crds").glob("*.yaml")))
DEFAULT_NAMESPACES = ("default", "kube-system", "tollgate-system")


def _log_write(verb: str, target: Target, body: dict[str, Any]) -> None:
    metadata = body.get("metadata") or {}
    where = f"{metadata.get('namespace')}/{metadata.get('name')}" if metadata.get("namespace") \
        else str(metadata.get("name"))
    print(f"{time.time():.6f} {verb} {target.qualified} {where} "
          f"rv={metadata.get('resourceVersion')}", flush=True)


def build_emulator(crds: Sequence[Path], namespaces: Sequence[str],
                   log_size: int | None = None) -> KubeEmulator:
    """An emulator serving the built-in kinds, `crds` (also stored, for `kubectl get crd`) and
    `namespaces`."""
    emulator = KubeEmulator() if log_size is None else KubeEmulator(log_size=log_size)
    emulator.declare_builtins()
    for namespace in dict.fromkeys([*DEFAULT_NAMESPACES, *namespaces]):
        emulator.preload_namespace(namespace)
    for path in crds:
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                emulator.preload(document)  # storing a CRD also registers its resource
    emulator.on_write = _log_write
    return emulator


async def serve(port: int, crds: Sequence[Path], namespaces: Sequence[str],
                ready_file: Path | None) -> None:
    emulator = build_emulator(crds, namespaces)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with emulator, kmock.Server(emulator, host="127.0.0.1", port=port or None) as server:
        if ready_file is not None:
            tmp = ready_file.with_name(ready_file.name + ".tmp")
            tmp.write_text(str(server.port))
            os.replace(tmp, ready_file)
        print(f"kmock emulator listening on {server.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.kmock_server")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--crd", action="append", type=Path, default=None,
                        help="CRD manifest to serve (repeatable; default: crds/*.yaml)")
    parser.add_argument("--namespace", action="append", default=[],
                        help="namespace to preload (repeatable)")
    parser.add_argument("--ready-file", type=Path, help="write the port here once listening")
    args = parser.parse_args(argv)
    crds = args.crd if args.crd is not None else list(DEFAULT_CRDS)
    asyncio.run(serve(args.port, crds, args.namespace, args.ready_file))
    return 0


# --- the test side ---------------------------------------------------------------------------


def write_kubeconfig(path: Path, url: str, namespace: str = "default") -> Path:
    """A kubeconfig for the emulator: plain HTTP on loopback, no credentials."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "kmock", "user": {}}],
        "contexts": [{"name": "kmock",
                      "context": {"cluster": "kmock", "user": "kmock", "namespace": namespace}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class EmulatorProcess:
    url: str
    kubeconfig: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_emulator(directory: Path, namespaces: Sequence[str] = (),
                   crds: Sequence[Path] = DEFAULT_CRDS, timeout: float = 20.0
                   ) -> EmulatorProcess:
    """Start the emulator process and wait (bounded) until it listens."""
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "kmock.port"
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    log_path = directory / "kmock.log"
    command = [sys.executable, "-m", "tests.support.kmock_server", "--ready-file", str(ready)]
    command += [arg for path in crds for arg in ("--crd", str(path))]
    command += [arg for namespace in namespaces for arg in ("--namespace", namespace)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited early:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"the emulator did not listen within {timeout} s")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{int(ready.read_text())}"
    kubeconfig = write_kubeconfig(directory / "kubeconfig", url)
    return EmulatorProcess(url, kubeconfig, log_path, process)


if __name__ == "__main__":
    raise SystemExit(main())
