"""Small builders shared by the OpenAI-API integration tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway import GatewayProcess, start_gateway

__all__ = [
    "FAST_TIMEOUTS",
    "anthropic_async_client",
    "anthropic_client",
    "anthropic_provider",
    "async_client",
    "log_events",
    "provider",
    "running_gateway",
    "sync_client",
    "user",
    "wait_for_log",
    "wait_until",
]

# Short enough that a timeout test costs half a second, long enough for a loaded laptop.
FAST_TIMEOUTS = {"connectSeconds": 1.0, "firstByteSeconds": 0.5, "totalSeconds": 5.0}

# The providers these helpers build neither retry nor trip a circuit breaker unless a test asks
# (`retry=…`, `breaker=…`): a module-scoped gateway fails the same target in test after test,
# and attempt counts must not depend on test order. test_outage_drill.py exercises both.


def provider(name: str, fake: FakeOpenAI, *, key_env: str | None,
             type: str = "openai-compatible", models: tuple[str, ...] = (),
             timeouts: dict[str, float] | None = None, retry: dict[str, Any] | None = None,
             breaker: dict[str, Any] | None = None) -> dict[str, Any]:
    """A provider entry pointing at a fake; its API key comes from the env var `key_env`."""
    entry: dict[str, Any] = {"name": name, "type": type, "baseURL": fake.base_url,
                             "timeouts": timeouts or FAST_TIMEOUTS, "retry": retry,
                             "circuitBreaker": breaker}
    if key_env is not None:
        entry["apiKey"] = {"env": key_env}
    if models:
        entry["models"] = list(models)
    return entry


def anthropic_provider(name: str, fake: FakeAnthropic, *, key_env: str,
                       models: tuple[str, ...] = (),
                       timeouts: dict[str, float] | None = None,
                       retry: dict[str, Any] | None = None,
                       breaker: dict[str, Any] | None = None) -> dict[str, Any]:
    """An `anthropic` provider entry pointing at the fake Anthropic server."""
    entry: dict[str, Any] = {"name": name, "type": "anthropic", "baseURL": fake.base_url,
                             "apiKey": {"env": key_env}, "timeouts": timeouts or FAST_TIMEOUTS,
                             "retry": retry, "circuitBreaker": breaker}
    if models:
        entry["models"] = list(models)
    return entry


def anthropic_client(gateway: GatewayProcess, token: str) -> anthropic.Anthropic:
    """The official anthropic SDK pointed at the gateway, its own retries off."""
    return anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0, timeout=15)


def anthropic_async_client(gateway: GatewayProcess, token: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=token, max_retries=0,
                                    timeout=15)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sync_client(gateway: GatewayProcess, token: str) -> openai.OpenAI:
    """The official SDK, with its own retries off so each call is exactly one request."""
    return openai.OpenAI(base_url=gateway.base_url, api_key=token, max_retries=0, timeout=15)


def async_client(gateway: GatewayProcess, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=token, max_retries=0,
                              timeout=15)


@contextmanager
def running_gateway(directory: Path, config: dict[str, Any], env: dict[str, str],
                    **options: Any) -> Iterator[GatewayProcess]:
    """A gateway shared by a module's tests (module-scoped fixtures use this)."""
    gateway = start_gateway(directory / "tollgate.yaml", config=config, env=env, **options)
    try:
        yield gateway
    finally:
        gateway.stop()


def log_events(gateway: GatewayProcess) -> list[dict[str, Any]]:
    """The gateway's structured log lines (non-JSON lines are skipped)."""
    events = []
    for line in gateway.logs().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def wait_for_log(gateway: GatewayProcess, matches: Callable[[dict[str, Any]], bool],
                 timeout: float = 3.0) -> dict[str, Any]:
    """The first log event that `matches`, waiting a bounded time for it to be written."""
    deadline = time.monotonic() + timeout
    while True:
        for event in log_events(gateway):
            if matches(event):
                return event
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching log event within {timeout} s:\n{gateway.logs()}")
        time.sleep(0.02)


def wait_until(condition: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    """Poll `condition` every 20 ms for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what or condition}")
        time.sleep(0.02)
