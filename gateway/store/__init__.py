"""Shared state: budgets, rate-limit windows, the usage ledger and circuit breakers behind one
Store protocol.

Two real implementations: `RedisStore` (many replicas; one Lua script per call) and
`EmbeddedStore` (standalone; one SQLite transaction per call). `open_store` picks by config.
The implementations are imported lazily so the standalone gateway never imports redis-py.
"""

from tollgate.gateway.store.base import (
    Admission,
    BudgetCheck,
    BudgetFigures,
    LedgerRecord,
    RateCheck,
    RateFigures,
    Release,
    ReserveRequest,
    Scope,
    Settlement,
    Store,
    StoreError,
    StoreOptions,
    StoreUnavailable,
    customer_scope,
    key_scope,
)
from tollgate.gateway.store.breaker import BreakerPolicy, BreakerState, MemoryBreakers
from tollgate.gateway.store.factory import open_store
from tollgate.gateway.store.outbox import Outbox

__all__ = [
    "Admission",
    "BreakerPolicy",
    "BreakerState",
    "BudgetCheck",
    "BudgetFigures",
    "LedgerRecord",
    "MemoryBreakers",
    "Outbox",
    "RateCheck",
    "RateFigures",
    "Release",
    "ReserveRequest",
    "Scope",
    "Settlement",
    "Store",
    "StoreError",
    "StoreOptions",
    "StoreUnavailable",
    "customer_scope",
    "key_scope",
    "open_store",
]
