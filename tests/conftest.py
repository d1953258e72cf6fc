"""Shared fixtures: real processes on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, start_gateway


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start gateways from a config dict: `gateway_factory(config_doc(...), env={...})`.
    Each gets its own config file in tmp_path; all are stopped at teardown."""
    started: list[GatewayProcess] = []

    def factory(config: dict[str, Any] | str, **kwargs: Any) -> GatewayProcess:
        path = tmp_path / f"gateway-{len(started)}.yaml"
        gateway = start_gateway(path, config=config, **kwargs)
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        gateway.stop()
