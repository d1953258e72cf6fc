"""Metering, the usage ledger and the key views, on a standalone gateway with the embedded
store (the default: a SQLite file next to the config), run with two uvicorn workers that share
that file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.governance.support import (
    LONG_MODEL,
    METERED_MODEL,
    PROVIDER_ENV,
    budget_for,
    chat,
    chat_body,
    error_code,
    export_usage,
    governed_config,
    governed_key,
    key_info,
    token_for,
    usd,
    wait_for_a_fresh_rate_window,
)
from tests.integration.helpers import sync_client, user, wait_until
from tests.support.config import sha256
from tests.support.gateway import GatewayProcess, start_gateway

ADMIN_TOKEN = "tg-admin-0c93e1f7"
INFO = "info-key"
ISLAND = "island-key"
METER = "meter-key"
STOP = "stop-key"
FINISH = "finish-key"
LEDGER_A = "ledger-a"
LEDGER_B = "ledger-b"
DURABLE = "durable-key"
EXACT = "exact-key"
ISLAND_ZONE = "Pacific/Kiritimati"  # UTC+14: its day differs from UTC's for ten hours a day

# $0.0041 buys 4100 output tokens of long-model; without max_tokens a request holds 4096
STREAM_BUDGET = {"maxUSD": "0.0041", "period": "total"}
LONG_TEXT = " ".join(f"w{i}" for i in range(5000))


@dataclass
class Deployment:
    config_path: Path
    gateway: GatewayProcess

    def restart(self) -> GatewayProcess:
        self.gateway.stop()
        self.gateway = start_gateway(self.config_path, env=PROVIDER_ENV, workers=2)
        return self.gateway


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory,
               openai_upstream_server: FakeOpenAI) -> Iterator[Deployment]:
    config = governed_config(
        openai_upstream_server,
        keys=[
            governed_key(INFO, customerId="globex", metadata={"team": "search"},
                         budget={"maxUSD": "5", "period": "monthly"},
                         rateLimit={"requestsPerMinute": 100, "tokensPerMinute": 100_000,
                                    "maxConcurrent": 4}),
            governed_key(ISLAND, budget={"maxUSD": "1", "period": "daily",
                                         "timezone": ISLAND_ZONE}),
            governed_key(METER, budget={"maxUSD": "10", "period": "total"}),
            governed_key(STOP, budget={**STREAM_BUDGET, "onExceededInStream": "stop"}),
            governed_key(FINISH, budget=STREAM_BUDGET),
            governed_key(LEDGER_A, customerId="initech",
                         metadata={"billingCode": "KEY-DEFAULT"}),
            governed_key(LEDGER_B, customerId="umbrella"),
            governed_key(DURABLE, budget={"maxUSD": "1", "period": "total"}),
            governed_key(EXACT, budget={"maxUSD": budget_for(10, max_tokens=10),
                                        "period": "total"}),
        ],
        customers=[{"id": "globex", "budget": {"maxUSD": "50", "period": "weekly"},
                    "rateLimit": {"requestsPerMinute": 1000}}],
        server={"adminTokenSHA256": sha256(ADMIN_TOKEN)},
    )
    path = tmp_path_factory.mktemp("metering") / "tollgate.yaml"
    deployment = Deployment(path, start_gateway(path, config=config, env=PROVIDER_ENV,
                                                workers=2))
    try:
        yield deployment
    finally:
        deployment.gateway.stop()


@pytest.fixture
def gateway(deployment: Deployment) -> GatewayProcess:
    return deployment.gateway


def _stream(gateway: GatewayProcess, key_id: str, body: dict[str, Any],
            headers: dict[str, str] | None = None) -> tuple[httpx.Headers, list[str]]:
    """A streamed chat completion read to its very end: (headers, SSE lines)."""
    with httpx.stream("POST", gateway.base_url + "/chat/completions",
                      json={**body, "stream": True}, timeout=15,
                      headers={"authorization": f"Bearer {token_for(key_id)}",
                               **(headers or {})}) as response:
        assert response.status_code == 200, response.read()
        return response.headers, list(response.iter_lines())


def _stream_cost(lines: list[str]) -> str:
    [comment] = [line for line in lines if line.startswith(": tollgate-cost-usd ")]
    return comment.removeprefix(": tollgate-cost-usd ")


def _ledger(gateway: GatewayProcess, since: datetime) -> dict[str, dict[str, Any]]:
    """Raw ledger rows since `since`, by request id."""
    out = export_usage(gateway.config_path, "--since", since.isoformat(), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    return {row["request_id"]: row for row in rows}


def _spent(gateway: GatewayProcess, key_id: str) -> Decimal:
    return usd(key_info(gateway, key_id)["budgets"][0]["spentUSD"])


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


async def test_two_workers_on_the_embedded_store_admit_exactly_the_budgets_ten_requests(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=10)  # $0.01, as held
    auth = {"authorization": f"Bearer {token_for(EXACT)}"}
    async with httpx.AsyncClient(timeout=15, headers=auth,
                                 limits=httpx.Limits(max_connections=40)) as client:
        responses = await asyncio.gather(*(
            client.post(gateway.base_url + "/chat/completions", json=chat_body(max_tokens=10))
            for _ in range(40)))

    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 30
    assert {error_code(r) for r in responses if r.status_code == 429} == {"budget_exceeded"}
    [budget] = key_info(gateway, EXACT)["budgets"]
    assert (budget["spentUSD"], budget["reservedUSD"]) == ("0.10", "0.00")


def test_key_info_shows_limits_period_spend_remaining_and_rate_headroom(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    wait_for_a_fresh_rate_window()
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=3)  # $0.003
    response = chat(gateway, INFO, chat_body(max_tokens=10))
    assert response.headers["x-tollgate-cost-usd"] == "0.003"
    assert response.headers["x-ratelimit-limit-requests"] == "100"  # the tighter of the two
    assert response.headers["x-ratelimit-remaining-requests"] == "99"
    assert response.headers["x-ratelimit-limit-tokens"] == "100000"

    info = key_info(gateway, INFO)
    now = datetime.now(UTC)
    assert (info["id"], info["customerId"], info["metadata"]) == (INFO, "globex",
                                                                   {"team": "search"})
    assert info["budget"] == {"maxUSD": "5", "period": "monthly", "timezone": "UTC",
                              "onExceededInStream": "finish"}
    assert info["rateLimit"] == {"requestsPerMinute": 100, "tokensPerMinute": 100_000,
                                 "maxConcurrent": 4}
    own, customer = info["budgets"]
    own.pop("forecast")  # tested in tests/integration/observability
    assert own == {
        "scope": "key:info-key", "period": now.strftime("%Y-%m"),
        "periodEnd": datetime.combine(_next_month(now.date()), time(0), UTC).isoformat(),
        "limitUSD": "5.00", "spentUSD": "0.003", "reservedUSD": "0.00",
        "remainingUSD": "4.997",
    }
    iso = now.isocalendar()
    assert customer["scope"] == "customer:globex"
    assert customer["period"] == f"{iso.year}-W{iso.week:02d}"
    assert (customer["limitUSD"], customer["spentUSD"], customer["remainingUSD"]) == \
        ("50.00", "0.003", "49.997")
    own_rate, customer_rate = info["rateLimits"]
    assert 0 < own_rate.pop("resetSeconds") <= 60
    assert own_rate == {"scope": "key:info-key", "requestsPerMinute": 100,
                        "requestsRemaining": 99, "tokensPerMinute": 100_000,
                        "tokensRemaining": 100_000 - 10, "maxConcurrent": 4, "inFlight": 0}
    assert (customer_rate["requestsPerMinute"], customer_rate["requestsRemaining"],
            customer_rate["tokensRemaining"]) == (1000, 999, None)

    anonymous = httpx.get(gateway.base_url + "/key/info", timeout=5)
    assert anonymous.status_code == 401


def test_a_daily_budget_counts_in_its_own_timezones_day(gateway: GatewayProcess):
    zone = ZoneInfo(ISLAND_ZONE)
    before = datetime.now(zone).date()
    [budget] = key_info(gateway, ISLAND)["budgets"]
    days = {before, datetime.now(zone).date()}  # both, should local midnight fall in between
    day = date.fromisoformat(budget["period"])
    assert day in days
    assert datetime.fromisoformat(budget["periodEnd"]) == \
        datetime.combine(day + timedelta(days=1), time(0), zone)


def test_the_admin_api_lists_every_key_for_the_admin_token_only(gateway: GatewayProcess):
    url = gateway.url + "/admin/keys"
    for headers in ({}, {"authorization": "Bearer tg-admin-wrong"},
                    {"authorization": f"Bearer {token_for(INFO)}"}):
        refused = httpx.get(url, headers=headers, timeout=5)
        assert refused.status_code == 401
        assert error_code(refused) == "invalid_api_key"

    listing = httpx.get(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    assert listing.status_code == 200
    data = listing.json()["data"]
    assert [entry["id"] for entry in data] == sorted(
        [INFO, ISLAND, METER, STOP, FINISH, LEDGER_A, LEDGER_B, DURABLE, EXACT])
    [entry] = [entry for entry in data if entry["id"] == INFO]
    assert entry["budgets"] == key_info(gateway, INFO)["budgets"]
    assert [r["requestsPerMinute"] for r in entry["rateLimits"]] == [100, 1000]


def test_a_streamed_request_costs_what_the_same_request_costs_unstreamed(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    since = datetime.now(UTC) - timedelta(seconds=1)
    # 21 fresh input tokens x $100/M + 300 cached x $10/M + 45 output x $1000/M = $0.0501
    openai_upstream.set_usage(prompt_tokens=321, completion_tokens=45, cached_tokens=300)
    body = chat_body(METERED_MODEL, "price me twice")
    spent_before = _spent(gateway, METER)

    plain = chat(gateway, METER, body)
    headers, lines = _stream(gateway, METER, body)

    assert plain.headers["x-tollgate-cost-usd"] == "0.0501"
    assert _stream_cost(lines) == "0.0501"
    assert [line for line in lines if line][-1] == "data: [DONE]"
    assert _spent(gateway, METER) - spent_before == Decimal("0.1002")
    ledger = _ledger(gateway, since)
    for request_id in (plain.headers["x-request-id"], headers["x-request-id"]):
        row = ledger[request_id]
        assert (row["cost_usd"], row["input_tokens"], row["cached_tokens"],
                row["output_tokens"]) == ("0.0501", 321, 300, 45)


def test_the_stop_policy_ends_a_stream_with_finish_reason_length_at_the_budget(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=5000, completion_tokens=5001)
    with sync_client(gateway, token_for(STOP)) as client:
        chunks = list(client.chat.completions.create(
            model=LONG_MODEL, messages=user(LONG_TEXT), stream=True))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert [f for f in finishes if f] == ["length"]
    assert f"Echo: {LONG_TEXT}".startswith(text)
    assert 4000 < len(text.split()) <= 4110  # about $0.0041 worth of output tokens
    wait_until(lambda: _spent(gateway, STOP) > 0, what="the stopped stream settled")
    overshoot = _spent(gateway, STOP) - Decimal(STREAM_BUDGET["maxUSD"])
    assert Decimal(0) <= overshoot <= Decimal("0.00001")  # cut off within a few tokens
    refused = chat(gateway, STOP, chat_body(LONG_MODEL, max_tokens=1))
    assert error_code(refused) == "budget_exceeded"


def test_the_finish_policy_lets_a_stream_over_budget_complete(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=5000, completion_tokens=5001)  # $0.005001
    with sync_client(gateway, token_for(FINISH)) as client:
        chunks = list(client.chat.completions.create(
            model=LONG_MODEL, messages=user(LONG_TEXT), stream=True))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert [f for f in finishes if f] == ["stop"]
    assert text == f"Echo: {LONG_TEXT}"
    wait_until(lambda: _spent(gateway, FINISH) == Decimal("0.005001"),
               what="the finished stream billed from its usage")
    refused = chat(gateway, FINISH, chat_body(LONG_MODEL, max_tokens=1))
    assert error_code(refused) == "budget_exceeded"


def test_usage_export_totals_equal_the_cost_headers_grouped_by_customer_and_billing_code(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    since = datetime.now(UTC) - timedelta(seconds=1)
    costs: dict[tuple[str, str], list[Decimal]] = {}
    ids: dict[str, str] = {}

    def spent(group: tuple[str, str], cost: str) -> None:
        costs.setdefault(group, []).append(usd(cost))

    openai_upstream.set_usage(prompt_tokens=10, completion_tokens=20)
    tagged = chat(gateway, LEDGER_A, chat_body(METERED_MODEL),
                  headers={"x-tollgate-tags": "billingCode=BC-100, team=search"})
    spent(("initech", "BC-100"), tagged.headers["x-tollgate-cost-usd"])
    ids["tagged"] = tagged.headers["x-request-id"]

    openai_upstream.set_usage(prompt_tokens=30, completion_tokens=5)
    with sync_client(gateway, token_for(LEDGER_A)) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=METERED_MODEL, messages=user("hello"), metadata={"billingCode": "BC-200"},
            user="alice")
    spent(("initech", "BC-200"), raw.headers["x-tollgate-cost-usd"])
    ids["sdk"] = raw.headers["x-request-id"]

    openai_upstream.set_usage(prompt_tokens=1, completion_tokens=1)
    untagged = chat(gateway, LEDGER_A, chat_body(METERED_MODEL))
    spent(("initech", "KEY-DEFAULT"), untagged.headers["x-tollgate-cost-usd"])

    openai_upstream.set_usage(prompt_tokens=50, completion_tokens=50)
    other = chat(gateway, LEDGER_B, chat_body(METERED_MODEL),
                 headers={"x-tollgate-tags": "billingCode=BC-100"})
    spent(("umbrella", "BC-100"), other.headers["x-tollgate-cost-usd"])
    openai_upstream.set_usage(prompt_tokens=2, completion_tokens=3)
    _, lines = _stream(gateway, LEDGER_B, chat_body(METERED_MODEL),
                       headers={"x-tollgate-tags": "billingCode=BC-100"})
    spent(("umbrella", "BC-100"), _stream_cost(lines))

    expected = {group: (str(len(c)), sum(c)) for group, c in costs.items()}
    options = ("--since", since.isoformat(), "--group-by", "customer,tag:billingCode")
    grouped_csv = csv.DictReader(io.StringIO(
        export_usage(gateway.config_path, *options, "--format", "csv")))
    grouped_jsonl = [json.loads(line) for line in
                     export_usage(gateway.config_path, *options, "--format", "jsonl").splitlines()]
    for rows in (list(grouped_csv), grouped_jsonl):
        totals = {(row["customer"], row["tag:billingCode"]): (str(row["requests"]),
                                                              usd(row["cost_usd"]))
                  for row in rows if row["customer"] in ("initech", "umbrella")}
        assert totals == expected

    ledger = _ledger(gateway, since)
    assert json.loads(ledger[ids["tagged"]]["tags"]) == {"billingCode": "BC-100",
                                                         "team": "search"}
    assert json.loads(ledger[ids["sdk"]]["tags"]) == {"billingCode": "BC-200", "user": "alice"}
    assert json.loads(ledger[ids["sdk"]]["metadata"]) == {"billingCode": "KEY-DEFAULT"}
    assert ledger[ids["sdk"]]["customer"] == "initech"


def test_spend_survives_a_gateway_restart_on_the_embedded_store(
        deployment: Deployment, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=10)  # $0.01 a request
    assert chat(deployment.gateway, DURABLE, chat_body(max_tokens=10)).status_code == 200
    assert _spent(deployment.gateway, DURABLE) == Decimal("0.01")

    restarted = deployment.restart()
    assert _spent(restarted, DURABLE) == Decimal("0.01")
    assert chat(restarted, DURABLE, chat_body(max_tokens=10)).status_code == 200
    assert _spent(restarted, DURABLE) == Decimal("0.02")
