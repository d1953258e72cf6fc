"""Snapshots built the way the gateway builds them (real embedded store, no network), and the
decision-log schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tollgate.gateway.config.models import GatewayConfig, StoreSettings
from tollgate.gateway.pricing import load_catalog
from tollgate.gateway.runtime import Snapshot, build_snapshot
from tollgate.gateway.store.base import Store
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.outbox import Outbox
from tollgate.gateway.transport import StreamingReply, Timeouts, TransportReply


class NoNetwork:
    """A Transport that fails the test if anything tries to reach a provider."""

    async def post(self, url: str, headers: dict[str, str], body: bytes,
                   timeouts: Timeouts) -> TransportReply:
        raise AssertionError(f"unexpected upstream call to {url}")

    async def open_stream(self, url: str, headers: dict[str, str], body: bytes,
                          timeouts: Timeouts) -> StreamingReply:
        raise AssertionError(f"unexpected upstream stream to {url}")

    async def aclose(self) -> None:
        return None


SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs" / "decision-log.schema.json"


@pytest.fixture(scope="session")
def decision_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
async def snapshot_of(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Any]], Snapshot]]:
    """`snapshot_of(config_doc(...))` → the Snapshot the gateway would serve, sharing one
    embedded store in tmp_path (closed at teardown)."""
    catalog = load_catalog()
    opened: list[EmbeddedStore] = []

    def stores(settings: StoreSettings) -> tuple[Store, Outbox]:
        if not opened:
            opened.append(EmbeddedStore(str(tmp_path / "state.db")))
        return opened[0], Outbox()

    def build(document: dict[str, Any]) -> Snapshot:
        return build_snapshot(GatewayConfig.model_validate(document), "rev-1", NoNetwork(),
                              catalog, stores)

    yield build
    for store in opened:
        await store.close()
