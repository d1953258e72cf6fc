"""Stage 3 — route: try the call's targets in order until one answers.

Connection errors, timeouts, 429 and 5xx move on to the next target; a provider's 4xx is the
caller's problem and is returned at once. A stream is committed only when its first frame has
arrived, so a streaming request can fail over until its first byte is sent to the client.
"""

from __future__ import annotations

import time

from tollgate.gateway.errors import UpstreamError, UpstreamServerError
from tollgate.gateway.pipeline.call import Attempt, Call
from tollgate.gateway.providers.base import ChatStream, Reply

__all__ = ["dispatch", "dispatch_stream"]


def _exhausted(call: Call, last: UpstreamError) -> UpstreamError:
    """The error for a route where every target failed: the last failure's class and status."""
    if len(call.attempts) <= 1:
        return last
    tried = ", ".join(f"{a.provider}/{a.model} ({a.outcome})" for a in call.attempts)
    error = type(last)(f"every route target failed: {tried}", headers=last.headers)
    error.status, error.code = last.status, last.code
    return error


async def dispatch(call: Call) -> Reply:
    last: UpstreamError | None = None
    for target in call.route:
        provider = call.snapshot.providers[target.provider]
        started = time.perf_counter()
        try:
            if call.endpoint == "chat":
                reply = await provider.chat(call.body, target.model)
            else:
                reply = await provider.embeddings(call.body, target.model)
        except UpstreamError as exc:
            # the class's code, never the upstream's own: it becomes a metric label
            call.attempts.append(Attempt(
                target.provider, target.model, type(exc).code, time.perf_counter() - started
            ))
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


async def dispatch_stream(call: Call) -> tuple[ChatStream, bytes]:
    """Open the first stream that yields a frame; returns it with that first frame."""
    last: UpstreamError | None = None
    for target in call.route:
        provider = call.snapshot.providers[target.provider]
        started = time.perf_counter()
        stream: ChatStream | None = None
        try:
            stream = await provider.chat_stream(call.body, target.model, call.include_usage)
            try:
                first = await stream.__anext__()
            except StopAsyncIteration:
                raise UpstreamServerError(
                    f"provider {target.provider!r} sent an empty stream"
                ) from None
        except UpstreamError as exc:
            if stream is not None:
                await stream.aclose()
            # the class's code, never the upstream's own: it becomes a metric label
            call.attempts.append(Attempt(
                target.provider, target.model, type(exc).code, time.perf_counter() - started
            ))
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
        return stream, first
    assert last is not None, "a call always has at least one target"
    raise _exhausted(call, last)
