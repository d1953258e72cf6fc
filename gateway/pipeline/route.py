"""Stage 3 — route: try the call's targets in order until one answers.

Connection errors, timeouts, 429, 529 and 5xx move on to the next target; a provider's 4xx is
the caller's problem and is returned at once. Each attempt gets a fresh translator for the pair
(the call's inbound shape, the target provider's wire shape), so one fallback chain can cross
API shapes: an OpenAI request served by Claude, an Anthropic request served by GPT.

A stream is committed only when the first event its wire shape counts as committing has
arrived (registry.COMMITS): lifecycle events before it (Anthropic's message_start,
content_block_start, ping) are translated but held back, so a stream that fails before any
content — Anthropic reports an overload as an `error` event after message_start — still fails
over to the next target. OpenAI's first chunk comes with the first token and commits at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from tollgate.gateway.errors import UpstreamError, UpstreamServerError, UpstreamUnavailable
from tollgate.gateway.estimate import estimate_input_tokens
from tollgate.gateway.pipeline.call import Attempt, Call
from tollgate.gateway.providers.base import ChatStream, Provider, Reply, TokenCounter
from tollgate.gateway.translate import registry
from tollgate.gateway.translate.base import Context, Translator
from tollgate.gateway.translate.sse import Event

__all__ = ["OpenStream", "count_tokens", "dispatch", "dispatch_stream", "estimate_count"]

log = logging.getLogger("tollgate.route")

_MAX_HELD_EVENTS = 64  # a stream that sends this many lifecycle events is committed anyway


@dataclass(slots=True)
class OpenStream:
    """A committed stream: the provider's stream, its translator, and the inbound events held
    back until the first content-bearing one (inclusive)."""

    stream: ChatStream
    translator: Translator
    held: list[Event]


def _exhausted(call: Call, last: UpstreamError) -> UpstreamError:
    """The error for a route where every target failed: the last failure's class and status."""
    if len(call.attempts) <= 1:
        return last
    tried = ", ".join(f"{a.provider}/{a.model} ({a.outcome})" for a in call.attempts)
    error = type(last)(f"every route target failed: {tried}", headers=last.headers)
    error.status, error.code = last.status, last.code
    return error


def _translator(call: Call, provider: Provider, model: str) -> Translator:
    price = call.snapshot.prices.price(provider.name, model)
    context = Context(
        model=model, request_id=call.request_id, stream=call.stream,
        include_usage=call.include_usage,
        max_output_tokens=price.max_output_tokens if price is not None else None,
        headers=call.forward_headers,
    )
    translator = registry.translator(call.inbound, provider.wire, context)
    if translator is None:
        raise UpstreamUnavailable(
            f"provider {provider.name!r} speaks {provider.wire!r} and has no translation from "
            f"{call.inbound!r} requests")
    return translator


def _failed(call: Call, provider: str, model: str, error: UpstreamError, started: float) -> None:
    # the class's code, never the upstream's own: it becomes a metric label
    call.attempts.append(Attempt(provider, model, type(error).code,
                                 time.perf_counter() - started))


async def dispatch(call: Call) -> Reply:
    last: UpstreamError | None = None
    for target in call.route:
        provider = call.snapshot.providers[target.provider]
        started = time.perf_counter()
        try:
            if call.endpoint == "chat":
                translator = _translator(call, provider, target.model)
                request = translator.request(call.body)
                wire = await provider.chat(request, target.model)
                reply = Reply(translator.response(wire), wire.usage)
            else:
                reply = await provider.embeddings(call.body, target.model)
        except UpstreamError as exc:
            _failed(call, target.provider, target.model, exc, started)
            if not exc.retryable:
                raise
            last = exc
            continue
        call.attempts.append(
            Attempt(target.provider, target.model, "ok", time.perf_counter() - started)
        )
        call.served_by = target
        return reply
    assert last is not None, "a call always has at least one target"
    raise _exhausted(call, last)


async def _hold_back(stream: ChatStream, translator: Translator,
                     commits: Callable[[Event], bool]) -> list[Event]:
    """Read wire events until one commits the response; return their inbound translations."""
    held: list[Event] = []
    for _ in range(_MAX_HELD_EVENTS):
        try:
            wire = await stream.__anext__()
        except StopAsyncIteration:
            raise UpstreamServerError("the provider ended the stream before any content") \
                from None
        held.extend(translator.feed(wire, stream.usage))
        if commits(wire):
            break
    return held


async def dispatch_stream(call: Call) -> OpenStream:
    """Open the first stream that commits; returns it with the inbound events read so far."""
    last: UpstreamError | None = None
    for target in call.route:
        provider = call.snapshot.providers[target.provider]
        started = time.perf_counter()
        stream: ChatStream | None = None
        try:
            translator = _translator(call, provider, target.model)
            request = translator.request(call.body)
            stream = await provider.chat_stream(request, target.model)
            held = await _hold_back(stream, translator, registry.COMMITS[provider.wire])
        except UpstreamError as exc:
            if stream is not None:
                await stream.aclose()
            _failed(call, target.provider, target.model, exc, started)
            if not exc.retryable:
                raise
            last = exc
            continue
        except BaseException:
            if stream is not None:
                await stream.aclose()
            raise
        call.attempts.append(
            Attempt(target.provider, target.model, "ok", time.perf_counter() - started)
        )
        call.served_by = target
        return OpenStream(stream, translator, held)
    assert last is not None, "a call always has at least one target"
    raise _exhausted(call, last)


def estimate_count(call: Call) -> int:
    """The gateway's own input-token estimate for a count_tokens request (Anthropic shape:
    the top-level system prompt counts as a leading message)."""
    body = call.body
    messages = list(body.get("messages") or ())
    system = body.get("system")
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return estimate_input_tokens({"messages": messages, "tools": body.get("tools")})


async def count_tokens(call: Call) -> int:
    """Input tokens of the call's request. When the first target's provider counts tokens
    itself in the call's own shape (Anthropic), it is asked — exact, and free; if it fails with
    anything but a refusal of the request, or any other provider leads the route, the answer is
    the gateway's estimate (the same one admission uses)."""
    target = call.route[0]
    provider = call.snapshot.providers[target.provider]
    if isinstance(provider, TokenCounter) and provider.wire == call.inbound:
        started = time.perf_counter()
        try:
            translator = _translator(call, provider, target.model)
            tokens = await provider.count_tokens(translator.request(call.body), target.model)
        except UpstreamError as exc:
            _failed(call, target.provider, target.model, exc, started)
            if not exc.retryable:
                raise
            log.info("count_tokens upstream failed; answering with the estimate",
                     extra={"event": "count_tokens_estimated", "request_id": call.request_id})
        else:
            call.attempts.append(
                Attempt(target.provider, target.model, "ok", time.perf_counter() - started))
            call.served_by = target
            return tokens
    return estimate_count(call)
