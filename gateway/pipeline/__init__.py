"""The request pipeline: the ordered stage list and nothing else.

    authenticate → authorize → route (failover) → settle (cost) → record (metrics, log)

`authenticate` runs first, at the edge, before the request body is even read (an unknown
caller never makes the gateway buffer a body); `run`/`run_stream` take it from there.
Governance (budget reservation, rate limits) slots in between authorize and route.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tollgate.gateway.errors import TollgateError, UpstreamError
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline.authenticate import authenticate
from tollgate.gateway.pipeline.authorize import authorize
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.pipeline.record import record
from tollgate.gateway.pipeline.route import dispatch, dispatch_stream
from tollgate.gateway.pipeline.settle import settle
from tollgate.gateway.providers.base import ChatStream, Reply

__all__ = ["Call", "authenticate", "run", "run_stream"]

_DONE = b"data: [DONE]\n\n"


def _failed(call: Call, error: TollgateError) -> None:
    call.outcome = "rejected" if error.status < 500 and not isinstance(error, UpstreamError) \
        else "error"
    call.error_code = error.code
    record(call)


async def run(call: Call) -> Reply:
    """A non-streaming call, start to finish."""
    try:
        authorize(call)
        reply = await dispatch(call)
    except TollgateError as error:
        _failed(call, error)
        raise
    settle(call, reply.usage)
    call.outcome = "ok"
    record(call)
    return reply


async def run_stream(call: Call) -> AsyncIterator[bytes]:
    """A streaming call: everything up to the first frame happens before this returns, so
    errors (and failover) happen while the client can still get a plain HTTP error."""
    try:
        authorize(call)
        stream, first = await dispatch_stream(call)
    except TollgateError as error:
        _failed(call, error)
        raise
    return _relay(call, stream, first)


async def _relay(call: Call, stream: ChatStream, first: bytes) -> AsyncIterator[bytes]:
    """Forward frames; after the first byte, a failure ends the stream with an error event."""
    try:
        frame = first
        while True:
            if frame == _DONE:
                settle(call, stream.usage)
                call.outcome = "ok"
                if call.priced and call.cost_micros is not None:
                    yield f": tollgate-cost-usd {format_usd(call.cost_micros)}\n\n".encode()
                yield frame
                return
            yield frame
            frame = await stream.__anext__()
    except StopAsyncIteration:
        call.outcome = "ok"
    except UpstreamError as error:
        call.outcome, call.error_code = "stream_broken", error.code
        yield b"data: " + error.body() + b"\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        call.outcome = "client_disconnected"
        raise
    finally:
        await stream.aclose()
        if call.usage is None:
            settle(call, stream.usage)
        record(call)
