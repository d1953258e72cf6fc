"""open_store(): the config's `store` section picks the implementation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.redis import RedisServer
from tollgate.gateway.config.models import StoreSettings
from tollgate.gateway.store import Store, StoreOptions, open_store
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.redis import RedisStore


async def test_no_url_opens_the_embedded_store_at_path(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.db"
    store = open_store(StoreSettings(path=str(path)))
    try:
        assert isinstance(store, EmbeddedStore) and isinstance(store, Store)
        await store.ping()
        assert path.exists()
    finally:
        await store.close()


async def test_a_redis_url_opens_the_redis_store(redis_server: RedisServer) -> None:
    store = open_store(StoreSettings(url=redis_server.url), StoreOptions(lease_seconds=30))
    try:
        assert isinstance(store, RedisStore) and isinstance(store, Store)
        assert store.options.lease_seconds == 30
        await store.ping()
    finally:
        await store.close()


def test_an_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="redis://"):
        open_store(StoreSettings(url="postgres://127.0.0.1/tollgate"))
