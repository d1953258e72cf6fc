"""The hot-path HTTP client, behind one small interface so it can change by measurement.

aiohttp is used because its pooled client measured ~10x the throughput of httpx's default
transport on this kind of machine (see TESTING.md). Every aiohttp/OS exception is translated
here, once, into the UpstreamError tree; nothing above this module sees aiohttp types.

Timeouts, per attempt (config `timeouts`):

- `connect`: opening the TCP (and TLS) connection (aiohttp `sock_connect`).
- `first_byte`: from sending the request to the provider's first byte — the response headers
  (aiohttp `sock_read`, which then also bounds every later silence while the body is read)
  and, for a stream, its first frame: `StreamingReply` gives the first body read only what is
  left of `first_byte` since the request was sent, so headers that come at once followed by a
  silent stream time out like a silent server.
- `total`: the whole attempt, from connecting to the last body byte, streams included
  (aiohttp's `total` timer runs until the connection is released).

Each raises UpstreamTimeout, which the router may retry or fail over from.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from tollgate.gateway.errors import UpstreamConnectError, UpstreamTimeout

__all__ = ["AiohttpTransport", "StreamingReply", "Timeouts", "Transport", "TransportReply"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    first_byte: float
    total: float


@dataclass(slots=True)
class TransportReply:
    status: int
    headers: dict[str, str]
    body: bytes


class StreamingReply:
    """An open response whose body is read line by line; always close it.

    `first_byte_deadline` (event-loop time): the first body read must finish by then."""

    def __init__(self, response: aiohttp.ClientResponse,
                 first_byte_deadline: float | None = None) -> None:
        self._response = response
        self._deadline = first_byte_deadline
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def _first(self, read: Awaitable[bytes]) -> bytes:
        deadline, self._deadline = self._deadline, None
        assert deadline is not None
        async with asyncio.timeout_at(deadline):
            return await read

    async def read(self) -> bytes:
        with _translate_errors():
            return await self._response.read()

    async def lines(self) -> AsyncIterator[bytes]:
        content = self._response.content
        with _translate_errors():
            if self._deadline is not None:
                line = await self._first(content.readline())
                if not line:
                    return
                yield line
            async for line in content:
                yield line

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in whatever pieces (binary framings: AWS event-stream)."""
        content = self._response.content
        with _translate_errors():
            if self._deadline is not None:
                chunk = await self._first(content.readany())
                if not chunk:
                    return
                yield chunk
            async for chunk in content.iter_any():
                yield chunk

    def close(self) -> None:
        """Return a fully read connection to the pool; drop one abandoned mid-body."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class Transport(Protocol):
    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> TransportReply: ...

    async def open_stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> StreamingReply: ...

    async def aclose(self) -> None: ...


@contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout("the provider did not answer in time") from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamConnectError("the provider's connection broke mid-response") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamConnectError("could not reach the provider") from exc


class AiohttpTransport:
    """One pooled aiohttp session per process (owned by the app's lifespan)."""

    def __init__(self, pool_limit: int = 1024) -> None:
        self._pool_limit = pool_limit
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._pool_limit, keepalive_timeout=30, ttl_dns_cache=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    @staticmethod
    def _timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.first_byte
        )

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> TransportReply:
        with _translate_errors():
            async with self._client().post(
                url, data=body, headers=headers, timeout=self._timeout(timeouts)
            ) as response:
                payload = await response.read()
                return TransportReply(
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=payload,
                )

    async def open_stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> StreamingReply:
        deadline = asyncio.get_running_loop().time() + timeouts.first_byte
        with _translate_errors():
            response = await self._client().post(
                url, data=body, headers=headers, timeout=self._timeout(timeouts)
            )
        return StreamingReply(response, deadline)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
