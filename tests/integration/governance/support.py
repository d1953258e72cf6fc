"""Builders and client helpers for the governance tests: priced models on the fake upstream,
keys, plain HTTP calls, `/v1/key/info` readers and the `tollgate usage export` command.

Prices are whole dollars per million tokens, so every cost is an exact number of micro-dollars:

    flat-model      input free, output $1000 per million: one output token costs $0.001, and
                    the admission hold is exactly `max_tokens` x $0.001 (no input estimate).
    metered-model   input $100, cached input $10, output $1000 per million.
    long-model      input free, output $1 per million: a request without `max_tokens` holds
                    the default allowance, 4096 output tokens = $0.004096.
"""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

__all__ = [
    "FLAT_MODEL",
    "LONG_MODEL",
    "METERED_MODEL",
    "PROVIDER_ENV",
    "budget_for",
    "chat",
    "chat_body",
    "error_code",
    "export_usage",
    "governed_config",
    "governed_key",
    "key_info",
    "token_for",
    "usd",
    "wait_for_a_fresh_rate_window",
]

FLAT_MODEL = "flat-model"
METERED_MODEL = "metered-model"
LONG_MODEL = "long-model"
PROVIDER_ENV = {"GOVERNANCE_FAKE_KEY": "sk-fake-governance-51c2"}

# Generous: the concurrency tests hold requests open on purpose.
_TIMEOUTS = {"connectSeconds": 1.0, "firstByteSeconds": 5.0, "totalSeconds": 10.0}
_PRICING = [
    {"provider": "fake", "model": FLAT_MODEL,
     "inputPerMillionUSD": "0", "outputPerMillionUSD": "1000"},
    {"provider": "fake", "model": METERED_MODEL, "inputPerMillionUSD": "100",
     "cachedInputPerMillionUSD": "10", "outputPerMillionUSD": "1000"},
    {"provider": "fake", "model": LONG_MODEL,
     "inputPerMillionUSD": "0", "outputPerMillionUSD": "1"},
]


def token_for(key_id: str) -> str:
    return f"tg-gov-{key_id}-7d1e"


def governed_key(key_id: str, **fields: Any) -> dict[str, Any]:
    """A virtualKeys entry whose bearer token is `token_for(key_id)`."""
    return key_entry(key_id, token_for(key_id), **fields)


def governed_config(fake: FakeOpenAI, keys: list[dict[str, Any]],
                    **sections: Any) -> dict[str, Any]:
    """One OpenAI-compatible provider `fake` serving the three priced models."""
    provider = {"name": "fake", "type": "openai-compatible", "baseURL": fake.base_url,
                "apiKey": {"env": "GOVERNANCE_FAKE_KEY"}, "timeouts": _TIMEOUTS,
                "models": [FLAT_MODEL, METERED_MODEL, LONG_MODEL]}
    return config_doc([provider], keys, pricing=_PRICING, **sections)


def budget_for(requests: int, max_tokens: int) -> str:
    """maxUSD that holds exactly `requests` flat-model requests capped at `max_tokens`."""
    return str(Decimal(requests * max_tokens) / 1000)


def chat_body(model: str = FLAT_MODEL, text: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


def chat(gateway: GatewayProcess, key_id: str, body: dict[str, Any],
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=15,
                      headers={"authorization": f"Bearer {token_for(key_id)}",
                               **(headers or {})})


def error_code(response: httpx.Response) -> str | None:
    return response.json()["error"]["code"]


def key_info(gateway: GatewayProcess, key_id: str) -> dict[str, Any]:
    response = httpx.get(gateway.base_url + "/key/info", timeout=5,
                         headers={"authorization": f"Bearer {token_for(key_id)}"})
    assert response.status_code == 200, response.text
    return response.json()


def usd(text: str) -> Decimal:
    return Decimal(text)


def export_usage(config_path: Path, *options: str) -> str:
    """Run `tollgate usage export --config FILE OPTIONS…` as its own process; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "tollgate.gateway", "usage", "export",
         "--config", str(config_path), *options],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for_a_fresh_rate_window(needed_seconds: float = 5.0) -> None:
    """Rate windows are Unix minutes: when less than `needed_seconds` of this one is left,
    sleep into the next, so a burst is counted in a single window."""
    left = 60 - time.time() % 60
    if left < needed_seconds:
        time.sleep(left + 0.05)
