"""The request pipeline: the ordered stage list and nothing else.

    authenticate → authorize → govern.admit → route (failover) → settle (cost)
                 → govern.finish (store + ledger) → record (metrics, log)

`authenticate` runs first, at the edge, before the request body is even read (an unknown
caller never makes the gateway buffer a body); `run`/`run_stream` take it from there. Once
`govern.admit` has held budget, every path out — errors and cancellation included — passes
through `govern.finish`, which settles or releases that hold exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from tollgate.gateway.errors import TollgateError, UpstreamError
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline import govern
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
    upstream = isinstance(error, UpstreamError)
    call.outcome = "rejected" if error.status < 500 and not upstream else "error"
    call.error_code = error.code


async def run(call: Call) -> Reply:
    """A non-streaming call, start to finish."""
    try:
        authorize(call)
        await govern.admit(call)
        reply = await dispatch(call)
        settle(call, reply.usage)
        call.outcome = "ok"
        return reply
    except TollgateError as error:
        _failed(call, error)
        raise
    except BaseException:
        call.outcome = "client_disconnected"
        raise
    finally:
        await govern.finish(call)
        record(call)


async def run_stream(call: Call) -> AsyncIterator[bytes]:
    """A streaming call: everything up to the first frame happens before this returns, so
    errors (and failover) happen while the client can still get a plain HTTP error."""
    try:
        authorize(call)
        await govern.admit(call)
        stream, first = await dispatch_stream(call)
    except BaseException as error:
        if isinstance(error, TollgateError):
            _failed(call, error)
        else:
            call.outcome = "client_disconnected"
        await govern.finish(call)
        record(call)
        raise
    return _relay(call, stream, first)


class _Meter:
    """A stream's running cost, so a key whose budget says `stop` can be cut off mid-stream.

    Output is counted as one token per content frame (OpenAI streams about one token per
    chunk); the bill itself always comes from the provider's reported usage."""

    def __init__(self, call: Call) -> None:
        self.limit: int | None = None
        self.picos = 0
        self.per_frame = 0
        hold, key, target = call.hold, call.key, call.served_by
        budget = key.config.budget if key else None
        if hold is None or target is None or budget is None:
            return
        if budget.on_exceeded_in_stream != "stop":
            return
        price = call.snapshot.prices.price(target.provider, target.model)
        room = hold.room_micros()
        if price is None or room is None:
            return
        self.limit = room * 1_000_000
        self.picos = hold.input_tokens * price.input
        self.per_frame = price.output

    def exceeded_after(self, frame: bytes) -> bool:
        if self.limit is None or b'"content"' not in frame:
            return False
        self.picos += self.per_frame
        return self.picos > self.limit


def _stop_frame(call: Call) -> bytes:
    """A final chunk that ends the stream like a max_tokens cut-off would."""
    target = call.served_by
    chunk = {
        "id": f"chatcmpl-{call.request_id}", "object": "chat.completion.chunk", "created": 0,
        "model": target.model if target else call.requested_model,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _relay(call: Call, stream: ChatStream, first: bytes) -> AsyncIterator[bytes]:
    """Forward frames; after the first byte, a failure ends the stream with an error event."""
    meter = _Meter(call)
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
            if meter.exceeded_after(frame):
                call.outcome = "budget_stopped"
                yield _stop_frame(call)
                yield _DONE
                return
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
        if call.usage is None and call.outcome == "budget_stopped":
            _settle_from_meter(call, meter)
        await govern.finish(call)
        record(call)


def _settle_from_meter(call: Call, meter: _Meter) -> None:
    """A stream we cut off has no usage report: bill what the meter counted (flagged in the
    log as an estimate by the outcome `budget_stopped`)."""
    if meter.limit is None:
        return
    call.cost_micros = -(-meter.picos // 1_000_000)
    call.priced = True
