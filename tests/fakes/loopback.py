"""The part every fake upstream shares: an aiohttp.web app on 127.0.0.1, on its own event loop
in a background thread, so a test (or the gateway process it starts) talks to it over a real
socket. Subclasses add their routes in `routes(app)`.

`Recorder` (and `RejectionLog`) hold what the fakes keep under a lock between resets: the
requests received and the scripted faults; `serving(fake)` starts a fake and stops it on exit."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aiohttp import web

__all__ = ["LoopbackServer", "Recorder", "RejectionLog", "hang_up", "serving"]


async def hang_up(request: web.Request) -> None:
    """Close the client's connection without another byte (a crash mid-response)."""
    transport = request.transport
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError


class LoopbackServer:
    name = "fake"
    label = ""  # how the start-up timeout names the server (default: `name`)

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._setup())
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise TimeoutError(f"the {self.label or self.name} server did not start "
                               "within 10 s")
        if failure:
            raise failure[0]

    async def _setup(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        # handler_cancellation: when the gateway gives up on a request (timeout, client gone),
        # the handler is cancelled instead of sleeping on; shutdown never waits on a stream.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        self.port = int(listener.getsockname()[1])
        await web.SockSite(self._runner, listener).start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            cleanup.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None


class Recorder:
    """A fake's per-test state (`state_type()`, with `requests` and a `script` deque) under
    a lock. `fault_type()` is the no-fault entry that `script(None)` queues."""

    state_type: Any
    fault_type: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._state = self.state_type()

    @property
    def requests(self) -> list[Any]:
        """Every request received since the last reset, oldest first (a copy)."""
        with self._lock:
            return list(self._state.requests)

    def script(self, *faults: Any) -> None:
        """The next requests, in order, take these faults (None: answer normally)."""
        with self._lock:
            self._state.script.extend(fault or self.fault_type() for fault in faults)

    def reset(self) -> None:
        with self._lock:
            self._state = self.state_type()


class RejectionLog:
    """For a `Recorder` whose state also lists why requests were refused as malformed."""

    _lock: threading.Lock
    _state: Any

    @property
    def rejections(self) -> list[str]:
        """Why requests were refused as malformed (empty when the gateway sent valid bodies)."""
        with self._lock:
            return list(self._state.rejections)


Fake = TypeVar("Fake", bound=LoopbackServer)


@contextmanager
def serving(fake: Fake) -> Iterator[Fake]:
    """Start `fake` on a free loopback port; stop it on exit."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
