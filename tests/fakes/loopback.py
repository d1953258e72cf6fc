"""The part every fake upstream shares: an aiohttp.web app on 127.0.0.1, on its own event loop
in a background thread, so a test (or the gateway process it starts) talks to it over a real
socket. Subclasses add their routes in `routes(app)`."""

from __future__ import annotations

import asyncio
import socket
import threading

from aiohttp import web

__all__ = ["LoopbackServer", "hang_up"]


async def hang_up(request: web.Request) -> None:
    """Close the client's connection without another byte (a crash mid-response)."""
    transport = request.transport
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError


class LoopbackServer:
    name = "fake"

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
            raise TimeoutError(f"the {self.name} server did not start within 10 s")
        if failure:
            raise failure[0]

    async def _setup(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
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
