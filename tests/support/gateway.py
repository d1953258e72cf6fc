"""Run the real gateway as a separate process (`python -m tollgate.gateway gateway …`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.net import free_port, wait_http

__all__ = ["GatewayProcess", "start_gateway", "write_atomically"]


def write_atomically(path: Path, document: dict[str, Any] | str) -> None:
    """Write a config the way a careful tool does: temp file, then rename over the old one."""
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class GatewayProcess:
    url: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """What an OpenAI SDK client takes as `base_url`."""
        return self.url + "/v1"

    def write_config(self, document: dict[str, Any] | str) -> None:
        write_atomically(self.config_path, document)

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


def start_gateway(
    config_path: Path,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    log_level: str = "info",
    config: dict[str, Any] | str | None = None,
) -> GatewayProcess:
    """Start a gateway on a free loopback port and wait until it answers /healthz."""
    if config is not None:
        write_atomically(config_path, config)
    port = free_port()
    log_path = config_path.with_suffix(f".{port}.log")
    command = [
        sys.executable, "-m", "tollgate.gateway", "gateway",
        "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", log_level, "--drain-seconds", "2",
    ]
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", config_path, log_path, process,
                             env or {})
    try:
        wait_http(gateway.url + "/healthz", alive=lambda: process.poll() is None)
    except BaseException:
        gateway.stop()
        raise RuntimeError(f"gateway did not start:\n{gateway.logs()}") from None
    return gateway
