"""Outbox: request endings that could not reach the store, replayed once it is back.

For keys whose `onStoreUnavailable` is `allow`: the request is served without a reservation,
its Settlement (or Release) is put here, and `flush` writes it to the store when the store
answers again. Replaying is exact because settle/release are idempotent by request id: a
Settlement that did reach the store before the error surfaced (reply lost) is not counted
twice, and a Settlement with no hold in the store just adds its spend.

`pending_micros(scope, period_id)` is the spend waiting here, so the pipeline can keep
accounting locally while the store is away (last known spend + pending). The last known
figures are kept here too: `remember` stores the BudgetFigures of each successful reservation
per (scope, period id), bounded (`max_known`, least recently seen dropped first), and
`last_known` returns them.

The outbox lives in process memory: a process that dies during an outage loses what it held.
It is bounded (`max_items`); when full the oldest entry is dropped and counted in `dropped`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque

from tollgate.gateway.store.base import (
    BudgetFigures,
    Release,
    Settlement,
    Store,
    StoreUnavailable,
)

__all__ = ["Outbox"]

log = logging.getLogger("tollgate.store")

Ending = Settlement | Release


class Outbox:
    def __init__(self, max_items: int = 100_000, max_known: int = 10_000) -> None:
        self.max_items = max_items
        self.max_known = max_known
        self._known: OrderedDict[tuple[str, str], BudgetFigures] = OrderedDict()
        self.dropped = 0
        self._items: deque[Ending] = deque()
        self._pending: dict[tuple[str, str], int] = {}
        self._flushing = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Ending) -> None:
        if len(self._items) >= self.max_items:
            self._forget(self._items.popleft())
            self.dropped += 1
            log.error("store outbox full: dropped the oldest pending request ending")
        self._items.append(item)
        if isinstance(item, Settlement) and item.actual_micros:
            for budget in item.budgets:
                key = (budget.scope, budget.period_id)
                self._pending[key] = self._pending.get(key, 0) + item.actual_micros

    def pending_micros(self, scope: str, period_id: str) -> int:
        """Spend on this budget that is waiting to be written to the store."""
        return self._pending.get((scope, period_id), 0)

    def remember(self, figures: BudgetFigures) -> None:
        """Keep a budget's figures as the store last reported them (after a reservation)."""
        key = (figures.scope, figures.period_id)
        self._known[key] = figures
        self._known.move_to_end(key)
        while len(self._known) > self.max_known:
            self._known.popitem(last=False)

    def last_known(self, scope: str, period_id: str) -> BudgetFigures | None:
        """The budget's figures as the store last reported them to this process, if any."""
        return self._known.get((scope, period_id))

    async def flush(self, store: Store) -> int:
        """Replay in order until done or the store fails again; returns how many were written.
        Entries stay queued until the store has accepted them."""
        written = 0
        async with self._flushing:
            while self._items:
                item = self._items[0]
                try:
                    if isinstance(item, Settlement):
                        await store.settle(item)
                    else:
                        await store.release(item)
                except StoreUnavailable:
                    break
                self._items.popleft()
                self._forget(item)
                written += 1
        return written

    async def run(self, store: Store, interval: float = 1.0) -> None:
        """Flush every `interval` seconds while anything is pending; run it as a lifespan task
        and cancel it at shutdown (then `flush` once more)."""
        while True:
            await asyncio.sleep(interval)
            if self._items:
                written = await self.flush(store)
                if written:
                    log.info("store outbox: wrote back %d request endings", written)

    def _forget(self, item: Ending) -> None:
        if isinstance(item, Settlement) and item.actual_micros:
            for budget in item.budgets:
                key = (budget.scope, budget.period_id)
                left = self._pending.get(key, 0) - item.actual_micros
                if left > 0:
                    self._pending[key] = left
                else:
                    self._pending.pop(key, None)
