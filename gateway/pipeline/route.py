"""Stage 3 — route: try the call's targets in order until one answers.

Connection errors, timeouts, 429, 529 and 5xx move on to the next target; a provider's 4xx is
the caller's problem and is returned at once. Each attempt gets a fresh translator for the pair
(the call's inbound shape, the target provider's wire shape), so one fallback chain can cross
API shapes: an OpenAI request served by Claude, an Anthropic request served by GPT.

Failure handling per target (pipeline/resilience.py; settings per provider):

    breaker open?  ──yes──► attempt `circuit_open` (no request, no timeout) → next target
        │ no (or: this request is a half-open probe)
    try ──ok──► report success, done
        │ failed: report failure (a 4xx counts as an answer: the provider is up)
    4xx? ──yes──► returned to the caller
    retry allowed?  (a passing failure, attempts left, not a probe, the breaker still closed,
        │            Retry-After within the cap, the provider's retry budget not spent)
        ├─yes─► wait the jittered backoff (or Retry-After) and try the same target again
        └─no──► next target (`tollgate_failovers_total`)

Each try is one `Attempt` in the decision log; a retry's `seconds` include the backoff wait
before it. Timeouts (connect, first byte, total) apply to each try on its own (transport.py).

A stream is committed only when the first event its wire shape counts as committing has
arrived (registry.COMMITS): lifecycle events before it (Anthropic's message_start,
content_block_start, ping) are translated but held back, so a stream that fails before any
content — Anthropic reports an overload as an `error` event after message_start — still fails
over (or is retried). OpenAI's first chunk comes with the first token and commits at once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tollgate.gateway import metrics
from tollgate.gateway.config.models import Target
from tollgate.gateway.errors import (
    UpstreamCircuitOpen,
    UpstreamConnectError,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollgate.gateway.estimate import estimate_input_tokens
from tollgate.gateway.pipeline.call import Attempt, Call
from tollgate.gateway.pipeline.resilience import Permit, parse_retry_after, retry_delay
from tollgate.gateway.providers.base import ChatStream, Provider, Reply, TokenCounter
from tollgate.gateway.translate import registry
from tollgate.gateway.translate.base import Context, Translator
from tollgate.gateway.translate.sse import Event

__all__ = ["OpenStream", "count_tokens", "dispatch", "dispatch_stream", "estimate_count"]

log = logging.getLogger("tollgate.route")

T = TypeVar("T")

_MAX_HELD_EVENTS = 64  # a stream that sends this many lifecycle events is committed anyway

RETRIED = (UpstreamConnectError, UpstreamTimeout, UpstreamRateLimited, UpstreamServerError,
           UpstreamOverloaded)
"""Failures worth trying the same target again for. Not UpstreamUnavailable: missing or
rejected credentials do not fix themselves in a quarter of a second."""


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


def _circuit_open(call: Call, target: Target, open_until_ms: int) -> UpstreamCircuitOpen:
    call.attempts.append(Attempt(target.provider, target.model, UpstreamCircuitOpen.code, 0.0))
    headers = {}
    if call.resilience is not None and open_until_ms:
        wait = open_until_ms / 1000 - call.resilience.clock()
        headers["retry-after"] = str(max(1, math.ceil(wait)))
    return UpstreamCircuitOpen(
        f"provider {target.provider!r} was not tried: its circuit breaker for model "
        f"{target.model!r} is open", headers=headers)


async def _try_target(call: Call, target: Target, provider: Provider,
                      once: Callable[[int], Awaitable[T]]) -> T:
    """Serve the call from one target: breaker check, then up to `maxAttempts` tries with
    backoff. Raises the last UpstreamError when the target cannot serve it."""
    resilience = call.resilience
    if resilience is None or not provider.available:  # nothing to guard: fails without a request
        started = time.perf_counter()
        try:
            result = await once(0)
        except UpstreamError as exc:
            _failed(call, target.provider, target.model, exc, started)
            raise
        call.attempts.append(Attempt(target.provider, target.model, "ok",
                                     time.perf_counter() - started))
        return result
    policy = resilience.policy(call.snapshot, target.provider)
    breaker = policy.breaker
    board = resilience.board(call.snapshot.store) if breaker is not None else None
    permit = Permit.ALLOW
    if board is not None and breaker is not None:
        permit = await board.check(target.provider, target.model, breaker)
        if permit is Permit.REFUSE:
            state = board.state(target.provider, target.model)
            raise _circuit_open(call, target, state.open_until_ms if state else 0)
    budget = resilience.budget(target.provider)
    budget.record_request()
    tries = 0
    waited = 0.0
    while True:
        started = time.perf_counter() - waited
        try:
            result = await once(tries)
        except UpstreamError as exc:
            _failed(call, target.provider, target.model, exc, started)
            if board is not None and breaker is not None:
                board.report(target.provider, target.model, breaker, not exc.retryable, permit)
            tries += 1
            if (not isinstance(exc, RETRIED) or tries >= policy.retry.max_attempts
                    or permit is Permit.PROBE):
                raise
            if board is not None and breaker is not None and \
                    board.opened(target.provider, target.model, breaker):
                raise  # this failure (or a replica's) opened it: fail over instead
            delay = retry_delay(
                tries, policy.retry,
                parse_retry_after(exc.headers.get("retry-after"), resilience.clock()),
                resilience.random)
            if delay is None or not budget.try_retry(policy.retry):
                raise
            metrics.RETRIES.labels(target.provider).inc()
            before = time.perf_counter()
            await resilience.sleep(delay)
            waited = time.perf_counter() - before
            continue
        if board is not None and breaker is not None:
            board.report(target.provider, target.model, breaker, True, permit)
        call.attempts.append(Attempt(target.provider, target.model, "ok",
                                     time.perf_counter() - started))
        return result


async def _route(call: Call,
                 serve: Callable[[Target, Provider], Awaitable[T]]) -> T:
    """Try each target in turn; the first that serves wins."""
    last: UpstreamError | None = None
    route = call.route
    for index, target in enumerate(route):
        provider = call.snapshot.providers[target.provider]
        try:
            result = await serve(target, provider)
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            last = exc
            if index + 1 < len(route):
                metrics.FAILOVERS.labels(target.provider).inc()
            continue
        call.served_by = target
        return result
    assert last is not None, "a call always has at least one target"
    raise _exhausted(call, last)


async def dispatch(call: Call) -> Reply:
    async def serve(target: Target, provider: Provider) -> Reply:
        if call.endpoint != "chat":
            async def embed(_: int) -> Reply:
                return await provider.embeddings(call.body, target.model)

            return await _try_target(call, target, provider, embed)
        started = time.perf_counter()
        try:
            first = _translator(call, provider, target.model)
        except UpstreamError as exc:
            _failed(call, target.provider, target.model, exc, started)
            raise

        async def chat(tries: int) -> Reply:
            translator = first if tries == 0 else _translator(call, provider, target.model)
            wire = await provider.chat(translator.request(call.body), target.model)
            return Reply(translator.response(wire), wire.usage)

        return await _try_target(call, target, provider, chat)

    return await _route(call, serve)


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
    async def serve(target: Target, provider: Provider) -> OpenStream:
        started = time.perf_counter()
        try:
            first = _translator(call, provider, target.model)
        except UpstreamError as exc:
            _failed(call, target.provider, target.model, exc, started)
            raise
        commits = registry.COMMITS[provider.wire]

        async def open_stream(tries: int) -> OpenStream:
            translator = first if tries == 0 else _translator(call, provider, target.model)
            request = translator.request(call.body)
            stream: ChatStream | None = None
            try:
                stream = await provider.chat_stream(request, target.model)
                held = await _hold_back(stream, translator, commits)
            except BaseException:
                if stream is not None:
                    await stream.aclose()
                raise
            return OpenStream(stream, translator, held)

        return await _try_target(call, target, provider, open_stream)

    return await _route(call, serve)


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
