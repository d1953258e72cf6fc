"""Helpers shared by the API routers: body reading, snapshot access, route headers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request

from tollgate.gateway.errors import NotReady, PayloadTooLarge, TollgateError
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline.authenticate import authenticate, token_from_headers
from tollgate.gateway.pipeline.call import Call, Endpoint, Shape
from tollgate.gateway.pipeline.govern import rate_limit_headers
from tollgate.gateway.pipeline.record import record
from tollgate.gateway.runtime import Snapshot

__all__ = [
    "cost_headers",
    "new_call",
    "read_body",
    "request_tags",
    "route_headers",
    "route_headers_on_error",
    "snapshot_of",
]


def snapshot_of(request: Request) -> Snapshot:
    """The config this request will use from start to finish (read once)."""
    snapshot: Snapshot | None = request.scope["state"]["holder"].current
    if snapshot is None:
        raise NotReady("the gateway has no valid configuration loaded yet; see /readyz")
    return snapshot


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes before reading them."""
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(f"the request body is larger than the {limit}-byte limit")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


_MAX_TAGS = 16


def request_tags(header: str | None, body: dict[str, Any]) -> dict[str, str]:
    """Per-request attribution tags for the ledger: `x-tollgate-tags: team=search,env=prod`,
    OpenAI's `metadata` object and its `user` field. Bounded in count and length."""
    tags: dict[str, str] = {}
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        for name, value in metadata.items():
            if isinstance(name, str) and isinstance(value, str):
                tags[name[:64]] = value[:256]
    user = body.get("user")
    if isinstance(user, str) and user:
        tags["user"] = user[:256]
    if header:
        for pair in header.split(","):
            name, sep, value = pair.partition("=")
            if sep and name.strip():
                tags[name.strip()[:64]] = value.strip()[:256]
    return dict(list(tags.items())[:_MAX_TAGS])


def route_headers(call: Call) -> dict[str, str]:
    headers = {"x-tollgate-attempts": str(len(call.attempts))}
    if call.hold is not None:
        headers.update(rate_limit_headers(call.hold.admission))
    if call.served_by is not None:
        headers["x-tollgate-provider"] = call.served_by.provider
        headers["x-tollgate-model"] = call.served_by.model
    if call.key is not None:
        headers["x-tollgate-key-id"] = call.key.id
    return headers


def cost_headers(call: Call) -> dict[str, str]:
    if call.priced and call.cost_micros is not None:
        return {"x-tollgate-cost-usd": format_usd(call.cost_micros)}
    if call.served_by is not None:
        return {"x-tollgate-cost-usd": "unknown"}
    return {}


def new_call(request: Request, endpoint: Endpoint, inbound: Shape = "openai") -> Call:
    """A Call for this request, authenticated before any of the body is read."""
    call = Call(
        request_id=request.scope["state"]["request_id"],
        endpoint=endpoint,
        snapshot=snapshot_of(request),
        body={},
        started=time.perf_counter(),
        inbound=inbound,
        token=token_from_headers(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        ),
        resilience=request.scope["state"].get("resilience"),
    )
    observability = request.scope["state"].get("observability")
    if observability is not None:
        call.tracer = observability.tracer_for(call.snapshot)
        if call.tracer is not None:
            call.traceparent = request.headers.get("traceparent")
    try:
        authenticate(call)
    except TollgateError as error:
        call.outcome, call.error_code = "rejected", error.code
        record(call)
        raise
    return call


@contextmanager
def route_headers_on_error(call: Call) -> Iterator[None]:
    """Failed calls still say how many attempts were made and on which key."""
    try:
        yield
    except TollgateError as error:
        error.headers = {**route_headers(call), **error.headers}
        raise
