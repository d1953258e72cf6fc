"""Self-service and admin views of keys: limits, current period, spend and headroom.

`GET /v1/key/info` answers for the calling virtual key; `GET /admin/keys` lists every key and
needs the admin token (`server.adminTokenSHA256`; unset → the admin API answers 404).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tollgate.gateway.api.common import snapshot_of
from tollgate.gateway.errors import AuthenticationFailed, ModelNotFound
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline.authenticate import authenticate, token_from_headers
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.pipeline.govern import checks_for
from tollgate.gateway.runtime import KeyPolicy, Snapshot
from tollgate.gateway.store.base import BudgetCheck, BudgetFigures, StoreUnavailable

__all__ = ["routes"]


def _forecast(observability: Any, check: BudgetCheck, figures: BudgetFigures,
              now: datetime) -> dict[str, Any] | None:
    """When this budget runs out at the recent spend rate (the alert evaluator's view)."""
    found = observability.forecast(check, figures, now) if observability is not None else None
    if found is None:
        return None
    return {
        "spendRateUSDPerHour": format_usd(int(round(found.rate_micros_per_hour))),
        "exhaustsAt": found.exhausts_at.isoformat() if found.exhausts_at else None,
        "beforePeriodEnd": found.flagged or found.exhausted,
    }


async def _describe(snapshot: Snapshot, key: KeyPolicy, now: datetime,
                    observability: Any = None) -> dict[str, Any]:
    config = key.config
    budgets, rates = checks_for(key, now)
    info: dict[str, Any] = {
        "id": key.id,
        "customerId": config.customer_id,
        "enabled": config.enabled,
        "expiresAt": config.expires_at.isoformat() if config.expires_at else None,
        "metadata": dict(config.metadata),
        "allowedProviders": list(config.allowed_providers),
        "allowedModels": list(config.allowed_models),
        "budget": (config.budget.model_dump(by_alias=True, exclude_none=True)
                   if config.budget else None),
        "rateLimit": (config.rate_limit.model_dump(by_alias=True, exclude_none=True)
                      if config.rate_limit else None),
        "configRevision": snapshot.revision,
        "budgets": [],
        "rateLimits": [],
    }
    try:
        spend = await snapshot.store.spend(budgets, now=now) if budgets else ()
        windows = await snapshot.store.rate_status(rates, now=now) if rates else ()
    except StoreUnavailable:
        info["storeUnavailable"] = True
        return info
    for check, figures in zip(budgets, spend, strict=True):
        info["budgets"].append({
            "scope": figures.scope,
            "period": figures.period_id,
            "periodEnd": check.period_end.isoformat() if check.period_end else None,
            "limitUSD": format_usd(figures.limit_micros),
            "spentUSD": format_usd(figures.spent_micros),
            "reservedUSD": format_usd(figures.reserved_micros),
            "remainingUSD": format_usd(figures.remaining_micros),
            "forecast": _forecast(observability, check, figures, now),
        })
    for window in windows:
        info["rateLimits"].append({
            "scope": window.scope,
            "requestsPerMinute": window.requests_limit,
            "requestsRemaining": window.requests_remaining,
            "tokensPerMinute": window.tokens_limit,
            "tokensRemaining": window.tokens_remaining,
            "maxConcurrent": window.concurrent_limit,
            "inFlight": window.in_flight,
            "resetSeconds": window.reset_seconds,
        })
    return info


async def key_info(request: Request) -> Response:
    call = Call(request_id=request.scope["state"]["request_id"], endpoint="chat",
                snapshot=snapshot_of(request), body={}, started=0.0,
                token=token_from_headers(request.headers.get("authorization"),
                                         request.headers.get("x-api-key")))
    authenticate(call)
    assert call.key is not None
    return JSONResponse(await _describe(call.snapshot, call.key, datetime.now(UTC),
                                        request.scope["state"].get("observability")))


async def admin_keys(request: Request) -> Response:
    snapshot = snapshot_of(request)
    expected = snapshot.config.server.admin_token_sha256
    if expected is None:
        raise ModelNotFound("the admin API is disabled (set server.adminTokenSHA256)",
                            code="unknown_url")
    token = token_from_headers(request.headers.get("authorization"), None) or ""
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    if not hmac.compare_digest(digest, expected):
        raise AuthenticationFailed("the admin API needs the admin token as a Bearer token")
    now = datetime.now(UTC)
    unique = {policy.id: policy for policy in snapshot.keys_by_hash.values()}
    observability = request.scope["state"].get("observability")
    data = [await _describe(snapshot, unique[k], now, observability) for k in sorted(unique)]
    return JSONResponse({"object": "list", "data": data})


routes = [
    Route("/v1/key/info", key_info, methods=["GET"]),
    Route("/admin/keys", admin_keys, methods=["GET"]),
]
