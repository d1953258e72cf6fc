"""The transport's three timeouts against a real server on 127.0.0.1: connect, first byte
(headers, and a stream's first frame, counted from the request), and total (the whole attempt,
streams included). Each failure is an UpstreamTimeout; nothing else leaks out."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack

import pytest
from aiohttp import web

from tollgate.gateway.errors import UpstreamTimeout
from tollgate.gateway.transport import AiohttpTransport, Timeouts


async def _frames(request: web.Request, first_delay: float, gap: float,
                  count: int) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await asyncio.sleep(first_delay)
    for n in range(count):
        if n:
            await asyncio.sleep(gap)
        await response.write(f"data: {n}\n\n".encode())
    await response.write_eof()
    return response


async def slow_headers(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(1.0)
    return web.Response(text="late")


async def headers_late_then_frame(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(0.2)  # each silence alone is under the first-byte timeout
    return await _frames(request, 0.2, 0.0, 1)


async def silent_stream(request: web.Request) -> web.StreamResponse:
    return await _frames(request, 1.0, 0.0, 1)


async def steady_stream(request: web.Request) -> web.StreamResponse:
    return await _frames(request, 0.0, 0.1, 12)


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "application/json"})
    await response.prepare(request)
    for _ in range(12):
        await response.write(b" ")
        await asyncio.sleep(0.1)
    await response.write_eof()
    return response


async def quick(request: web.Request) -> web.StreamResponse:
    return await _frames(request, 0.0, 0.0, 3)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    for name, handler in (("slow-headers", slow_headers),
                          ("headers-late-then-frame", headers_late_then_frame),
                          ("silent-stream", silent_stream), ("steady-stream", steady_stream),
                          ("trickle", trickle), ("quick", quick)):
        app.router.add_post(f"/{name}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    client = AiohttpTransport()
    yield client
    await client.aclose()


TIMEOUTS = Timeouts(connect=0.3, first_byte=0.3, total=0.5)


async def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout):
        await action()  # type: ignore[misc]
    return time.perf_counter() - started


async def _read_stream(transport: AiohttpTransport, url: str) -> list[bytes]:
    reply = await transport.open_stream(url, {}, b"{}", TIMEOUTS)
    try:
        return [line async for line in reply.lines()]
    finally:
        reply.close()


async def test_headers_later_than_the_first_byte_timeout_time_out(
        server: str, transport: AiohttpTransport) -> None:
    elapsed = await _timed(lambda: transport.post(server + "/slow-headers", {}, b"{}", TIMEOUTS))
    assert 0.25 < elapsed < 0.6


async def test_a_stream_whose_first_frame_is_late_times_out_at_the_first_byte_timeout(
        server: str, transport: AiohttpTransport) -> None:
    elapsed = await _timed(lambda: _read_stream(transport, server + "/silent-stream"))
    assert 0.25 < elapsed < 0.45


async def test_the_first_byte_timeout_counts_from_the_request_not_from_the_headers(
        server: str, transport: AiohttpTransport) -> None:
    """Headers after 0.2 s and the first frame 0.2 s later: 0.4 s to the first frame."""
    elapsed = await _timed(lambda: _read_stream(transport, server + "/headers-late-then-frame"))
    assert 0.25 < elapsed < 0.45


async def test_the_total_timeout_bounds_a_body_that_keeps_trickling(
        server: str, transport: AiohttpTransport) -> None:
    elapsed = await _timed(lambda: transport.post(server + "/trickle", {}, b"{}", TIMEOUTS))
    assert 0.45 < elapsed < 0.8


async def test_the_total_timeout_bounds_a_stream_too(
        server: str, transport: AiohttpTransport) -> None:
    elapsed = await _timed(lambda: _read_stream(transport, server + "/steady-stream"))
    assert 0.45 < elapsed < 0.8


async def test_the_stream_first_frame_deadline_does_not_touch_later_frames(
        server: str, transport: AiohttpTransport) -> None:
    assert await _read_stream(transport, server + "/quick") == [
        b"data: 0\n", b"\n", b"data: 1\n", b"\n", b"data: 2\n", b"\n"]
    reply = await transport.open_stream(server + "/quick", {}, b"{}", TIMEOUTS)
    try:
        assert b"".join([c async for c in reply.chunks()]) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    finally:
        reply.close()


async def test_a_server_that_never_accepts_times_out_at_the_connect_timeout(
        transport: AiohttpTransport) -> None:
    """A listener with a full accept queue drops new SYNs: the connection never opens."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):  # fill the accept queue (never accepted)
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        await asyncio.sleep(0.05)
        timeouts = Timeouts(connect=0.3, first_byte=5.0, total=5.0)
        elapsed = await _timed(lambda: transport.post(
            f"http://127.0.0.1:{port}/", {}, b"{}", timeouts))
    assert 0.25 < elapsed < 1.0
