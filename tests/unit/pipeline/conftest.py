"""Snapshots for the pipeline stages, built the way the gateway builds them, with no network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tollgate.gateway.config.models import GatewayConfig, StoreSettings
from tollgate.gateway.pricing import load_catalog
from tollgate.gateway.runtime import Snapshot, build_snapshot
from tollgate.gateway.store.base import Store
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.outbox import Outbox
from tollgate.gateway.transport import StreamingReply, Timeouts, TransportReply


class NoNetwork:
    """A Transport that fails the test if any stage tries to reach a provider."""

    async def post(self, url: str, headers: dict[str, str], body: bytes,
                   timeouts: Timeouts) -> TransportReply:
        raise AssertionError(f"unexpected upstream call to {url}")

    async def open_stream(self, url: str, headers: dict[str, str], body: bytes,
                          timeouts: Timeouts) -> StreamingReply:
        raise AssertionError(f"unexpected upstream stream to {url}")

    async def aclose(self) -> None:
        return None


@pytest.fixture
def snapshot_of(tmp_path: Path) -> Callable[[dict[str, Any]], Snapshot]:
    """`snapshot_of(config_doc(...))` → the Snapshot the gateway would serve for it, with a
    real embedded store in a temp dir."""
    catalog = load_catalog()

    def stores(settings: StoreSettings) -> tuple[Store, Outbox]:
        return EmbeddedStore(str(tmp_path / "state.db")), Outbox()

    def build(document: dict[str, Any]) -> Snapshot:
        config = GatewayConfig.model_validate(document)
        return build_snapshot(config, "test", NoNetwork(), catalog, stores)

    return build
