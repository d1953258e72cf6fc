"""Fire-once markers in both real stores: the first claim wins, across store instances (two
gateway processes, two replicas), and a marker lapses after its TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.redis import RedisServer
from tollgate.gateway.alerts import Markers, MarkerStore
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.redis import RedisStore

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-markers"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "redis"])
async def two_stores(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[tuple[MarkerStore, MarkerStore]]:
    if request.param == "embedded":
        stores = (EmbeddedStore(tmp_path / "s.db"), EmbeddedStore(tmp_path / "s.db"))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"t{tmp_path.name}:"
        stores = (RedisStore(server.url, prefix=prefix), RedisStore(server.url, prefix=prefix))
    yield stores
    for store in stores:
        await store.close()


async def test_the_first_claim_wins_across_instances(two_stores: tuple[MarkerStore, ...]):
    one, two = two_stores
    assert isinstance(one, MarkerStore)
    assert await one.claim_marker("budget:key:a:2026-11:50", NOW, 3600) is True
    assert await two.claim_marker("budget:key:a:2026-11:50", NOW, 3600) is False
    assert await two.claim_marker("budget:key:a:2026-11:80", NOW, 3600) is True


async def test_an_embedded_marker_lapses_after_its_ttl(tmp_path: Path):
    store = EmbeddedStore(tmp_path / "s.db")
    try:
        assert await store.claim_marker("anomaly:key:a", NOW, 60)
        assert not await store.claim_marker("anomaly:key:a", NOW + timedelta(seconds=59), 60)
        assert await store.claim_marker("anomaly:key:a", NOW + timedelta(seconds=61), 60)
    finally:
        await store.close()


async def test_markers_remember_a_settled_question_without_asking_again():
    class Counting:
        calls = 0

        async def claim_marker(self, name: str, now: datetime, ttl_seconds: int) -> bool:
            Counting.calls += 1
            return False

    markers = Markers()
    assert not await markers.claim(Counting(), "m", NOW, 60)
    assert not await markers.claim(Counting(), "m", NOW, 60)
    assert Counting.calls == 1


async def test_a_store_without_markers_dedupes_in_process():
    markers = Markers()
    assert await markers.claim(object(), "m", NOW, 60)
    assert not await markers.claim(object(), "m", NOW, 60)
