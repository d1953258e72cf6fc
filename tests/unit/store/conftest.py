"""Store fixtures: a real redis-server per session (plus dedicated ones for outage tests), the
embedded store in a temp dir, and `store_spec` parametrised over both implementations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis import RedisServer
from tests.unit.store.support import StoreSpec
from tollgate.gateway.store.base import Store


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests isolate themselves by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Dedicated redis-servers a test may kill and restart (`persistent=True` keeps data
    across restarts); all stopped at teardown."""
    started: list[RedisServer] = []

    def factory(*, persistent: bool = False) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", persistent=persistent)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(params=["embedded", "redis"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return StoreSpec("redis", server.url, prefix=f"t-{uuid.uuid4().hex[:12]}:")
    return StoreSpec("embedded", str(tmp_path / "state.db"))


@pytest.fixture
async def store_factory(store_spec: StoreSpec) -> AsyncIterator[Callable[..., Store]]:
    """Open the parametrised store (again), optionally with other StoreOptions:
    `store_factory(lease_seconds=5)`. Every store opened is closed at teardown."""
    opened: list[Store] = []

    def factory(**options: Any) -> Store:
        store = store_spec.with_options(**options).open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory: Callable[..., Store]) -> Store:
    return store_factory()
