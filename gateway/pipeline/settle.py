"""Stage 4 — settle: the real cost of the call, from the usage the provider reported."""

from __future__ import annotations

from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.pricing import Usage

__all__ = ["settle"]


def settle(call: Call, usage: Usage | None) -> None:
    """Price `usage` at the serving target's price. A model without a price is not billed at
    $0 silently: `priced` stays False and the record stage flags it."""
    call.usage = usage
    target = call.served_by
    if target is None or usage is None:
        return
    price = call.snapshot.prices.price(target.provider, target.model)
    if price is None:
        return
    call.cost_micros = price.cost(usage)
    call.priced = True
