"""What an open circuit breaker costs: with the primary down and its breaker open, how much
does the route through it add over a route straight to the fallback? (issue 4, "Targets":
<= 1 ms.)

    python -m bench.breaker                  # embedded store (standalone), 5 rounds
    python -m bench.breaker --store redis    # breakers shared through a local redis-server
    python -m bench.breaker --quick

One gateway, one fast fake upstream (bench/fake_upstream.py), two model aliases:

    direct            → [fallback]
    via-open-breaker  → [primary (a closed port: connection refused), fallback]

The primary's breaker is opened first (three refused connections; `openSeconds` is an hour),
and the harness checks `tollgate_circuit_state{provider="primary"} == 2` before measuring.
Then, in each round, sequential requests at one connection alternate between the two aliases
in ten short blocks each (which one goes first alternates by round); every answer must be 200
from the fallback, and `via-open-breaker` answers must say `x-tollgate-attempts: 2` (the
skipped primary, then the fallback). The figure is the median over rounds of p50(via) − p50(direct).
The gateway is pinned to the first CPU, the fake upstream and this client to the second
(TESTING.md, "Benchmarks").
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TOKEN = "tg-bench-breaker"
MODEL = "bench-model"  # what bench/fake_upstream answers with
TARGET_MS = 1.0
BODY = json.dumps({"model": "direct", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "Say hello in five words."}]},
                  separators=(",", ":"))


def _log(message: str) -> None:
    print(f"[bench.breaker {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpus() -> tuple[list[str], list[str]]:
    """taskset prefixes: (gateway CPU, load CPU); empty when pinning is impossible."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    os.sched_setaffinity(0, {cpus[1]})  # this harness (the client) runs on the load CPU
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]


def _wait(url: str, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _config(upstream: str, dead_port: int, workdir: Path, redis_url: str | None) -> dict[str, Any]:
    store: dict[str, Any] = {"url": redis_url} if redis_url else {"path": str(workdir / "s.db")}
    price = {"inputPerMillionUSD": "0.15", "outputPerMillionUSD": "0.60"}
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "store": store,
        "providers": [
            {"name": "primary", "type": "openai-compatible", "models": [MODEL],
             "baseURL": f"http://127.0.0.1:{dead_port}/v1", "retry": None,
             "circuitBreaker": {"consecutiveFailures": 3, "openSeconds": 3600}},
            {"name": "fallback", "type": "openai-compatible", "models": [MODEL],
             "baseURL": upstream + "/v1"},
        ],
        "models": [
            {"name": "direct", "targets": [{"provider": "fallback", "model": MODEL}]},
            {"name": "via-open-breaker", "targets": [{"provider": "primary", "model": MODEL},
                                                     {"provider": "fallback", "model": MODEL}]},
        ],
        "pricing": [{"provider": p, "model": MODEL, **price} for p in ("primary", "fallback")],
        "virtualKeys": [{"id": "bench", "tokenSHA256": hashlib.sha256(TOKEN.encode()).hexdigest()}],
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered))) - 1))]


async def _block(session: aiohttp.ClientSession, url: str, alias: str, count: int) -> list[float]:
    body = BODY.replace('"direct"', f'"{alias}"').encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    attempts = "2" if alias == "via-open-breaker" else "1"
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200 or response.headers.get("x-tollgate-provider") \
                    != "fallback" or response.headers.get("x-tollgate-attempts") != attempts:
                raise RuntimeError(f"{alias}: unexpected answer {response.status} "
                                   f"{dict(response.headers)}")
        latencies.append(elapsed * 1000)
    return latencies


def _circuit_state(gateway: str) -> float | None:
    with urllib.request.urlopen(gateway + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("tollgate_circuit_state{") and 'provider="primary"' in line:
                return float(line.rsplit(" ", 1)[1])
    return None


async def _measure(gateway: str, rounds: int, requests: int, warmup: int) -> dict[str, Any]:
    url = gateway + "/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
        body = BODY.replace('"direct"', '"via-open-breaker"').encode()
        for _ in range(10):  # open the primary's breaker: refused connections
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            if _circuit_state(gateway) == 2:
                break
        if _circuit_state(gateway) != 2:
            raise RuntimeError("the primary's circuit breaker did not open")
        for alias in ("direct", "via-open-breaker"):
            await _block(session, url, alias, warmup)
        per_round: list[dict[str, Any]] = []
        for index in range(rounds):
            order = ("direct", "via-open-breaker")
            if index % 2:
                order = order[::-1]
            samples: dict[str, list[float]] = {alias: [] for alias in order}
            slices = 10  # short alternating blocks, so drift on a busy machine hits both
            for _ in range(slices):
                for alias in order:
                    samples[alias] += await _block(session, url, alias,
                                                   max(1, requests // slices))
            figures = {alias: {"p50_ms": round(statistics.median(v), 4),
                               "p90_ms": round(_percentile(v, 90), 4),
                               "p99_ms": round(_percentile(v, 99), 4)}
                       for alias, v in samples.items()}
            added = figures["via-open-breaker"]["p50_ms"] - figures["direct"]["p50_ms"]
            figures["added_p50_ms"] = round(added, 4)
            per_round.append(figures)
            _log(f"round {index + 1}/{rounds}: direct p50 {figures['direct']['p50_ms']:.3f} ms,"
                 f" via open breaker p50 {figures['via-open-breaker']['p50_ms']:.3f} ms,"
                 f" added {added:+.3f} ms")
    if _circuit_state(gateway) != 2:
        raise RuntimeError("the primary's breaker closed during the run")

    def median_of(path: tuple[str, ...]) -> float:
        values = []
        for figures in per_round:
            value: Any = figures
            for part in path:
                value = value[part]
            values.append(value)
        return round(statistics.median(values), 4)

    summary = {
        "direct_p50_ms": median_of(("direct", "p50_ms")),
        "via_open_breaker_p50_ms": median_of(("via-open-breaker", "p50_ms")),
        "direct_p99_ms": median_of(("direct", "p99_ms")),
        "via_open_breaker_p99_ms": median_of(("via-open-breaker", "p99_ms")),
        "added_p50_ms": median_of(("added_p50_ms",)),
    }
    return {"rounds": per_round, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breaker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("embedded", "redis"), default="embedded")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="per alias per round")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="1 round of 300 requests")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests, args.warmup = 1, 300, 50
    gateway_cpu, load_cpu = _cpus()
    with tempfile.TemporaryDirectory(prefix="tgbench-breaker-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        fake = subprocess.Popen(
            [*load_cpu, sys.executable, "-m", "bench.fake_upstream", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        stack.callback(_stop, fake)
        assert fake.stdout is not None
        line = fake.stdout.readline().decode().strip()
        fake.stdout.close()
        if not line.startswith("fake-upstream listening on "):
            raise RuntimeError(f"the fake upstream did not start: {line!r}")
        upstream = "http://" + line.rsplit(" ", 1)[1]
        redis_url = None
        if args.store == "redis":
            port = _free_port()
            redis = subprocess.Popen(
                [*load_cpu, shutil.which("redis-server") or "/usr/bin/redis-server",
                 "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                 "no", "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(_stop, redis)
            redis_url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.02)
        config_path = workdir / "tollgate.yaml"
        config_path.write_text(yaml.safe_dump(
            _config(upstream, _free_port(), workdir, redis_url), sort_keys=False))
        port = _free_port()
        log = (workdir / "gateway.log").open("wb")
        gateway = subprocess.Popen(
            [*gateway_cpu, sys.executable, "-m", "tollgate.gateway", "gateway", "--config",
             str(config_path), "--host", "127.0.0.1", "--port", str(port), "--log-level",
             "warning", "--drain-seconds", "1"], stdout=log, stderr=subprocess.STDOUT,
            cwd=workdir)
        log.close()
        stack.callback(_stop, gateway)
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/healthz", gateway, "the gateway")
        _log(f"gateway {url} (store: {args.store}), fake upstream {upstream}; "
             f"{args.rounds} round(s) × {args.requests} requests per alias")
        results = asyncio.run(_measure(url, args.rounds, args.requests, args.warmup))
    summary = results["summary"]
    met = summary["added_p50_ms"] <= TARGET_MS
    results["meta"] = {"store": args.store, "rounds": args.rounds, "requests": args.requests,
                       "pinned": bool(gateway_cpu), "python": sys.version.split()[0],
                       "target": f"added p50 <= {TARGET_MS} ms", "met": met}
    print(f"\nbreaker open → fallback, store {args.store}, medians of {args.rounds} round(s):")
    print(f"  direct to the fallback    p50 {summary['direct_p50_ms']:.3f} ms   "
          f"p99 {summary['direct_p99_ms']:.3f} ms")
    print(f"  via the open breaker      p50 {summary['via_open_breaker_p50_ms']:.3f} ms   "
          f"p99 {summary['via_open_breaker_p99_ms']:.3f} ms")
    print(f"  added by the open breaker p50 {summary['added_p50_ms']:+.3f} ms  "
          f"(target <= {TARGET_MS} ms: {'met' if met else 'NOT met'})")
    output = args.output or RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-breaker.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    _log(f"results written to {output}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
