"""Receivers on 127.0.0.1 for what the gateway sends out: alert webhooks and OTLP traces.

Each runs aiohttp.web on its own event loop in a background thread (as the fake upstreams do),
records every POST (path, headers, body) and can be told to fail the next N requests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["Received", "Receiver", "running_receiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.port = 0
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._failures: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (recorded all the same)."""
        with self._lock:
            self._failures.extend(statuses)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 10.0,
                 path: str | None = None) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.received(path)
            if condition(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met within {timeout} s; "
                                     f"got {[r.path for r in found]}")
            time.sleep(0.02)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self._received.append(Received(request.path, dict(request.headers), body))
            status = self._failures.pop(0) if self._failures else 200
        return web.Response(status=status, text="ok" if status == 200 else "nope")

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._setup())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="receiver", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise TimeoutError("the receiver did not start")

    async def _setup(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        self.port = int(listener.getsockname()[1])
        await web.SockSite(self._runner, listener).start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
