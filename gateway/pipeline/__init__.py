"""The request pipeline: the ordered stage list and nothing else.

    authenticate → authorize → govern.admit → route (failover, translation) → settle (cost)
                 → govern.finish (store + ledger) → record (metrics, log)

The same stages serve every inbound shape (`call.inbound`: OpenAI chat completions, Anthropic
messages); route.py translates per attempt, and a stream is written by the inbound shape's
`Outbound` (translate/shapes/), which knows its end event, its error event and its early stop.
`run_count` serves count_tokens: authorize → route.count_tokens → record (nothing is held or
billed; counting is free).

`authenticate` runs first, at the edge, before the request body is even read (an unknown
caller never makes the gateway buffer a body); `run`/`run_stream` take it from there. Once
`govern.admit` has held budget, every path out — errors and cancellation included — passes
through `govern.finish`, which settles or releases that hold exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator

from tollgate.gateway.errors import TollgateError, UpstreamError
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline import govern
from tollgate.gateway.pipeline.authenticate import authenticate
from tollgate.gateway.pipeline.authorize import authorize
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.pipeline.record import record
from tollgate.gateway.pipeline.route import OpenStream, count_tokens, dispatch, dispatch_stream
from tollgate.gateway.pipeline.settle import settle
from tollgate.gateway.providers.base import Reply
from tollgate.gateway.translate import registry
from tollgate.gateway.translate.base import Outbound
from tollgate.gateway.translate.sse import Event, comment

__all__ = ["Call", "authenticate", "run", "run_count", "run_stream"]

BODY_CAPTURE_BYTES = 16 * 1024  # at most this much of a response is kept for the log


def _failed(call: Call, error: TollgateError) -> None:
    upstream = isinstance(error, UpstreamError)
    call.outcome = "rejected" if error.status < 500 and not upstream else "error"
    call.error_code = error.code


async def run(call: Call) -> Reply:
    """A non-streaming call, start to finish."""
    try:
        authorize(call)
        await govern.admit(call)
        call.dispatched = time.perf_counter()
        reply = await dispatch(call)
        settle(call, reply.usage)
        call.outcome = "ok"
        if call.key is not None and call.key.config.log_bodies:
            call.response_body = reply.body
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


async def run_count(call: Call) -> int:
    """count_tokens: input tokens of the request, from the provider or estimated. The call is
    authorized as "chat" (same route and fallback chain) and recorded as "count_tokens"."""
    try:
        authorize(call)
        tokens = await count_tokens(call)
        call.outcome = "ok"
        return tokens
    except TollgateError as error:
        _failed(call, error)
        raise
    except BaseException:
        call.outcome = "client_disconnected"
        raise
    finally:
        call.endpoint = "count_tokens"
        record(call)


async def run_stream(call: Call) -> AsyncIterator[bytes]:
    """A streaming call: everything up to the first committing event happens before this
    returns, so errors (and failover) happen while the client can still get a plain HTTP
    error."""
    try:
        authorize(call)
        await govern.admit(call)
        call.dispatched = time.perf_counter()
        opened = await dispatch_stream(call)
    except BaseException as error:
        if isinstance(error, TollgateError):
            _failed(call, error)
        else:
            call.outcome = "client_disconnected"
        await govern.finish(call)
        record(call)
        raise
    frames = _relay(call, opened, registry.outbound(call.inbound, call.request_id))
    if call.key is not None and call.key.config.log_bodies:
        return _captured(call, frames)
    return frames


async def _captured(call: Call, frames: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """For keys with `logBodies`: keep the first bytes written, for the decision log."""
    kept = call.response_body = bytearray()  # filled in place: record() may run mid-loop
    try:
        async for frame in frames:
            if len(kept) < BODY_CAPTURE_BYTES:
                kept += frame[:BODY_CAPTURE_BYTES - len(kept)]
            yield frame
    finally:
        await frames.aclose()


class _Meter:
    """A stream's running cost, so a key whose budget says `stop` can be cut off mid-stream.

    Output is counted as one token per output-bearing event (OpenAI and Anthropic both stream
    about one token per content event); the bill itself always comes from the provider's
    reported usage."""

    def __init__(self, call: Call, outbound: Outbound) -> None:
        self.counts = outbound.counts_output
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

    def exceeded_after(self, event: Event) -> bool:
        if self.limit is None or not self.counts(event):
            return False
        self.picos += self.per_frame
        return self.picos > self.limit


async def _relay(call: Call, opened: OpenStream,
                 outbound: Outbound) -> AsyncGenerator[bytes, None]:
    """Write the held events, then translate and write the rest; after the first byte, a
    failure ends the stream with the inbound shape's error event."""
    call.first_token_seconds = time.perf_counter() - call.started
    meter = _Meter(call, outbound)
    stream = opened.stream
    feed = opened.translator.feed
    pending = opened.held
    try:
        while True:
            for event in pending:
                if outbound.is_end(event):
                    settle(call, stream.usage)
                    call.outcome = "ok"
                    if call.priced and call.cost_micros is not None:
                        yield comment(f"tollgate-cost-usd {format_usd(call.cost_micros)}")
                    yield outbound.write(event)
                    return
                yield outbound.write(event)
                if meter.exceeded_after(event):
                    call.outcome = "budget_stopped"
                    target = call.served_by
                    yield outbound.stop(target.model if target else call.requested_model,
                                        stream.usage)
                    return
            waited = time.perf_counter()
            wire = await stream.__anext__()
            call.upstream_seconds += time.perf_counter() - waited
            pending = feed(wire, stream.usage)
    except StopAsyncIteration:
        call.outcome = "ok"
    except UpstreamError as error:
        call.outcome, call.error_code = "stream_broken", error.code
        yield outbound.error(error)
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
