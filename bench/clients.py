"""In-process asyncio/aiohttp clients: a fixed-rate (open-loop) load and a streaming
time-to-first-event probe. Both run in the harness process, on the load CPU, and measure the
gateway and the upstream alone the same way, so their own overhead cancels in the difference."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import orjson

from bench.procs import BenchError

__all__ = ["Samples", "check_endpoint", "fixed_rate", "first_events", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Samples:
    """Latencies in milliseconds, plus how many requests were sent and how late the sender was."""

    latencies_ms: list[float]
    sent: int
    seconds: float
    max_send_lag_ms: float = 0.0

    def summary(self) -> dict[str, float | int]:
        values = self.latencies_ms
        return {
            "requests": self.sent,
            "seconds": round(self.seconds, 3),
            "rate": round(self.sent / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": round(percentile(values, 50), 4),
            "p90_ms": round(percentile(values, 90), 4),
            "p99_ms": round(percentile(values, 99), 4),
            "max_ms": round(max(values), 4),
            "max_send_lag_ms": round(self.max_send_lag_ms, 3),
        }


def _session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30),
        skip_auto_headers=("User-Agent",),
    )


async def check_endpoint(url: str, headers: dict[str, str], body: bytes,
                         stream_body: bytes) -> dict[str, object]:
    """One plain and one streamed request: both must succeed with the expected shape, so a
    misconfigured target can never be 'fast' by answering errors."""
    async with _session(2) as session:
        async with session.post(url, data=body, headers=headers) as response:
            raw = await response.read()
            if response.status != 200:
                raise BenchError(f"POST {url} answered {response.status}: {raw[:500]!r}")
            try:
                usage = orjson.loads(raw).get("usage")
            except (orjson.JSONDecodeError, AttributeError):
                usage = None
            if not isinstance(usage, dict) or not usage.get("total_tokens"):
                raise BenchError(f"POST {url} answered without usage: {raw[:500]!r}")
            served = {k: v for k, v in response.headers.items()
                      if k.lower().startswith("x-tollgate-")}
        async with session.post(url, data=stream_body, headers=headers) as response:
            raw = await response.read()
            if response.status != 200 or b"data: [DONE]" not in raw:
                raise BenchError(f"streamed POST {url} answered {response.status}: {raw[:500]!r}")
    return {"headers": served}


async def _fixed_rate(url: str, headers: dict[str, str], body: bytes, rate: float,
                      seconds: float) -> Samples:
    loop = asyncio.get_running_loop()
    count = max(1, round(rate * seconds))
    latencies: list[float] = []
    failures: list[str] = []
    lag = 0.0

    async def one(session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            failures.append(repr(exc))
            return
        if status != 200:
            failures.append(f"status {status}")
            return
        latencies.append((time.perf_counter() - started) * 1000.0)

    async with _session(256) as session:
        # one request first so the connection is open, as it is for wrk
        await one(session)
        latencies.clear()
        tasks: list[asyncio.Task[None]] = []
        start = loop.time() + 0.01
        for index in range(count):
            due = start + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(lag, loop.time() - due)
            tasks.append(asyncio.create_task(one(session)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
    if failures:
        raise BenchError(f"{len(failures)} of {count} requests to {url} failed: {failures[:3]}")
    return Samples(latencies, count, elapsed, lag * 1000.0)


async def _first_events(url: str, headers: dict[str, str], body: bytes,
                        requests: int) -> Samples:
    latencies: list[float] = []
    started_all = time.perf_counter()
    async with _session(4) as session:
        for index in range(requests + 1):
            started = time.perf_counter()
            first: float | None = None
            async with session.post(url, data=body, headers=headers) as response:
                if response.status != 200:
                    raise BenchError(f"streamed POST {url} answered {response.status}")
                while True:
                    line = await response.content.readline()
                    if not line:
                        break
                    if line.startswith(b"data:"):
                        first = time.perf_counter()
                        break
                rest = await response.content.read()
            if first is None or b"[DONE]" not in rest:
                raise BenchError(f"streamed POST {url} did not send events and [DONE]")
            if index:  # the first request only opens the connection
                latencies.append((first - started) * 1000.0)
    return Samples(latencies, requests, time.perf_counter() - started_all)


def fixed_rate(url: str, headers: dict[str, str], body: bytes, rate: float,
               seconds: float, runner: asyncio.Runner) -> Samples:
    """Send `rate` requests per second for `seconds`, on schedule whatever the answers do."""
    return runner.run(_fixed_rate(url, headers, body, rate, seconds))


def first_events(url: str, headers: dict[str, str], body: bytes, requests: int,
                 runner: asyncio.Runner) -> Samples:
    """Sequential streamed requests: time from sending to the first `data:` line."""
    return runner.run(_first_events(url, headers, body, requests))
