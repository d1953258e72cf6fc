"""A recording, fault-injecting HTTP proxy in front of the emulated API server, on 127.0.0.1.

The gateways under test talk to the API through it (their kubeconfig names its URL), so a
test sees every call a gateway made (method, path, status) and can make the "API server"
answer 500 to chosen calls, at the network boundary, the way an overloaded or broken API
server would. Responses are streamed through, watches included. It runs aiohttp on its own
event loop in a background thread, like the fake upstreams.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from tests.support.net import free_port

__all__ = ["ApiProxy", "Recorded", "running_proxy"]

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
                "content-encoding"}


@dataclass(frozen=True)
class Recorded:
    at: float
    method: str
    path: str
    query: str
    status: int
    injected: bool
    agent: str


@dataclass(frozen=True)
class _Fault:
    status: int
    method: str | None
    path: re.Pattern[str] | None


class ApiProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self._lock = threading.Lock()
        self._records: list[Recorded] = []
        self._fault: _Fault | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._watches: set[asyncio.Task[object]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests use ----------------------------------------------------------------------

    def records(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Calls so far, optionally only those of `method` whose path matches `path`."""
        with self._lock:
            found = list(self._records)
        return [r for r in found if (method is None or r.method == method)
                and (path is None or re.search(path, r.path))]

    def fail(self, status: int = 500, *, method: str | None = None,
             path: str | None = None) -> None:
        """Answer `status` to every call matching `method` and `path` (a regex), until
        `heal()`. Watches already open are not cut."""
        with self._lock:
            self._fault = _Fault(status, method, re.compile(path) if path else None)

    def cut_watches(self) -> None:
        """Drop every open watch connection (as an API server restart does)."""
        loop = self._loop
        if loop is None:
            return
        for task in list(self._watches):
            loop.call_soon_threadsafe(task.cancel)

    def heal(self) -> None:
        with self._lock:
            self._fault = None

    # -- the server ----------------------------------------------------------------------------

    def _injected(self, request: web.Request) -> int | None:
        with self._lock:
            fault = self._fault
        if fault is None:
            return None
        if fault.method is not None and request.method != fault.method:
            return None
        if fault.path is not None and not fault.path.search(request.path):
            return None
        return fault.status

    def _record(self, request: web.Request, status: int, injected: bool) -> None:
        with self._lock:
            self._records.append(Recorded(time.monotonic(), request.method, request.path,
                                          request.query_string, status, injected,
                                          request.headers.get("User-Agent", "")))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        status = self._injected(request)
        if status is not None:
            await request.read()
            self._record(request, status, True)
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "reason": "InternalError", "code": status,
                    "message": "injected by the test proxy"}
            return web.json_response(body, status=status)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        data = await request.read()
        task = asyncio.current_task()
        if request.query.get("watch") and task is not None:
            self._watches.add(task)
        try:
            async with self._session.request(
                    request.method, self.upstream + request.path_qs, headers=headers,
                    data=data or None, allow_redirects=False) as upstream:
                self._record(request, upstream.status, False)
                response = web.StreamResponse(status=upstream.status, headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS})
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, ConnectionResetError):
            self._record(request, 502, False)
            return web.json_response({"message": "upstream failed"}, status=502)
        finally:
            self._watches.discard(task)  # type: ignore[arg-type]

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        ready.set()
        await self._stopped.wait()
        await runner.cleanup()
        await self._session.close()

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve(ready))
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="api-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("the API proxy did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    _session: aiohttp.ClientSession | None = None


@contextmanager
def running_proxy(upstream: str) -> Iterator[ApiProxy]:
    proxy = ApiProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()

