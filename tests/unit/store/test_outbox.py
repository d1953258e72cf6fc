"""The outbox: spend served while Redis was down reaches Redis after it returns, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from tests.support.redis import RedisServer
from tests.unit.store.support import NOW, budget
from tollgate.gateway.store.base import LedgerRecord, Release, Settlement, Store
from tollgate.gateway.store.outbox import Outbox
from tollgate.gateway.store.redis import RedisStore

KEY = budget("key:acme-prod", 1_000_000)


def served(rid: str, cost: int) -> Settlement:
    return Settlement(rid, NOW, (KEY,), (), cost, 10,
                      LedgerRecord(NOW, rid, "acme-prod", cost_micros=cost))


async def test_spend_served_during_an_outage_is_written_back_once(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory(persistent=True)
    store = RedisStore(server.url)
    outbox = Outbox()
    try:
        # The first request's settle reached Redis; the client then lost the connection and
        # queued it anyway. Replaying it must not count it twice.
        await store.settle(served("a", 100))
        server.kill()
        for item in (served("a", 100), served("b", 200), served("c", 300)):
            outbox.add(item)
        outbox.add(Release("d", NOW, (KEY,), ()))
        assert outbox.pending_micros("key:acme-prod", "2026-11") == 600
        assert await outbox.flush(store) == 0 and len(outbox) == 4, "kept while Redis is down"

        server.start()  # reloads its append-only file: "a" is already there
        assert await outbox.flush(store) == 4
        assert len(outbox) == 0 and outbox.pending_micros("key:acme-prod", "2026-11") == 0
        (spend,) = await store.spend((KEY,), NOW)
        assert spend.spent_micros == 100 + 200 + 300
        ledger = [r.request_id async for r in store.ledger(NOW, NOW + timedelta(seconds=1))]
        assert sorted(ledger) == ["a", "b", "c"]
    finally:
        await store.close()


async def test_a_full_outbox_drops_the_oldest_and_counts_it(store: Store) -> None:
    outbox = Outbox(max_items=2)
    for rid, cost in (("a", 1), ("b", 2), ("c", 4)):
        outbox.add(served(rid, cost))
    assert outbox.dropped == 1 and outbox.pending_micros("key:acme-prod", "2026-11") == 6
    assert await outbox.flush(store) == 2
    (spend,) = await store.spend((KEY,), NOW)
    assert spend.spent_micros == 6
