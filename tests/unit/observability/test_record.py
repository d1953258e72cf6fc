"""The record stage: one decision-log line per call, valid against
docs/decision-log.schema.json with the governance figures behind the decision, and metrics
whose labels come from configuration only."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from prometheus_client import REGISTRY

from tests.support.config import config_doc, key_entry
from tollgate.gateway.config.models import Target
from tollgate.gateway.errors import BudgetExceeded, RateLimited
from tollgate.gateway.logs import JsonFormatter
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline import govern
from tollgate.gateway.pipeline.call import Attempt, Call
from tollgate.gateway.pipeline.record import BODY_LOG_BYTES, record
from tollgate.gateway.pipeline.settle import settle
from tollgate.gateway.pricing import Usage
from tollgate.gateway.runtime import Snapshot

PROMPT = "the secret plan is 7f3c"
TARGET = Target(provider="demo", model="mock-chat")
BACKUP = Target(provider="backup", model="mock-chat")


def _config() -> dict[str, Any]:
    return config_doc(
        providers=[{"name": "demo", "type": "mock", "models": ["mock-chat"]},
                   {"name": "backup", "type": "mock", "models": ["mock-chat"]}],
        pricing=[{"provider": p, "model": "mock-chat", "inputPerMillionUSD": "1",
                  "outputPerMillionUSD": "2"} for p in ("demo", "backup")],
        customers=[{"id": "acme", "budget": {"maxUSD": "100"}}],
        keys=[
            key_entry("rec-governed", "tok-gov", customerId="acme",
                      budget={"maxUSD": "10"}, rateLimit={"requestsPerMinute": 100}),
            key_entry("rec-plain", "tok-plain"),
            key_entry("rec-tight", "tok-tight", budget={"maxUSD": "0.000001"}),
            key_entry("rec-rpm", "tok-rpm", rateLimit={"requestsPerMinute": 1}),
            key_entry("rec-verbose", "tok-verbose", logBodies=True),
        ],
    )


@pytest.fixture
def lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tollgate.access")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _call(snapshot: Snapshot, key_id: str | None, **fields: Any) -> Call:
    key = next((p for p in snapshot.keys_by_hash.values() if p.id == key_id), None)
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 20}
    return Call(request_id=f"req-{time.perf_counter_ns()}", endpoint="chat", snapshot=snapshot,
                body=body, started=time.perf_counter(), key=key, requested_model="mock-chat",
                route=(TARGET, BACKUP), **fields)


def _served(call: Call, usage: Usage, *, failed_first: bool = False) -> None:
    call.dispatched = time.perf_counter()
    if failed_first:
        call.attempts.append(Attempt("demo", "mock-chat", "upstream_timeout", 0.5))
    target = BACKUP if failed_first else TARGET
    call.attempts.append(Attempt(target.provider, target.model, "ok", 0.02))
    call.served_by = target
    settle(call, usage)
    call.outcome = "ok"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_admitted_call_logs_its_holds_figures_and_cost(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], lines: Callable[[], list[Any]],
        decision_schema: jsonschema.Draft202012Validator):
    snapshot = snapshot_of(_config())
    call = _call(snapshot, "rec-governed", tags={"team": "search"})
    await govern.admit(call)
    _served(call, Usage(input_tokens=1000, output_tokens=500, cached_input_tokens=200,
                        reasoning_tokens=50), failed_first=True)
    await govern.finish(call)
    before = _sample("tollgate_requests_total", key="rec-governed", customer="acme",
                     provider="backup", model="mock-chat", outcome="ok")
    record(call)

    [line] = lines()
    decision_schema.validate(line)
    assert line["key"] == "rec-governed" and line["customer"] == "acme"
    assert line["tags"] == {"team": "search"}
    assert line["served_by"] == {"provider": "backup", "model": "mock-chat"}
    assert [a["outcome"] for a in line["attempts"]] == ["upstream_timeout", "ok"]
    governance = line["governance"]
    assert governance["decision"] == "admitted"
    assert call.hold is not None and call.hold.amount_micros > 0
    assert governance["held_usd"] == format_usd(call.hold.amount_micros)
    assert governance["held_tokens"] == call.hold.tokens
    assert [b["scope"] for b in governance["budgets"]] == ["key:rec-governed", "customer:acme"]
    assert governance["budgets"][0]["limit_usd"] == "10.00"
    assert governance["budgets"][0]["held_usd"] == governance["held_usd"]
    [rate] = governance["rate_limits"]
    assert (rate["requests_limit"], rate["requests_remaining"]) == (100, 99)
    assert governance["rejection"] is None
    # 1000 in at $1/M + 500 out at $2/M (cached priced as input: no cached price) = $0.002
    assert line["cost_usd"] == "0.002"
    assert (line["input_tokens"], line["cached_tokens"], line["reasoning_tokens"]) == (
        1000, 200, 50)
    assert line["upstream_ms"] >= 520 and line["overhead_ms"] >= 0
    assert PROMPT not in json.dumps(line)
    assert "request_body" not in line

    assert _sample("tollgate_requests_total", key="rec-governed", customer="acme",
                   provider="backup", model="mock-chat", outcome="ok") == before + 1
    assert _sample("tollgate_tokens_total", key="rec-governed", customer="acme",
                   kind="cached") >= 200
    # the gauge: remaining after the hold, corrected by this call's own settlement
    assert _sample("tollgate_budget_remaining_micro_usd", key="rec-governed") == 10_000_000 - 2000
    assert _sample("tollgate_budget_limit_micro_usd", key="rec-governed") == 10_000_000
    assert _sample("tollgate_customer_budget_limit_micro_usd", customer="acme") == 100_000_000


async def test_a_budget_rejection_logs_the_failing_scope_and_its_figures(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], lines: Callable[[], list[Any]],
        decision_schema: jsonschema.Draft202012Validator):
    snapshot = snapshot_of(_config())
    call = _call(snapshot, "rec-tight")
    before = _sample("tollgate_rejections_total", key="rec-tight", customer="",
                     limit="budget", scope="key")
    with pytest.raises(BudgetExceeded):
        await govern.admit(call)
    call.outcome, call.error_code = "rejected", "budget_exceeded"
    record(call)
    [line] = lines()
    decision_schema.validate(line)
    governance = line["governance"]
    assert governance["decision"] == "rejected"
    assert governance["rejection"] == {"reason": "budget_exceeded", "scope": "key:rec-tight",
                                       "limit": "budget",
                                       "retry_after_s": governance["rejection"]["retry_after_s"]}
    assert governance["budgets"][0]["limit_usd"] == "0.000001"
    assert line["served_by"] is None and line["attempts"] == []
    assert _sample("tollgate_rejections_total", key="rec-tight", customer="",
                   limit="budget", scope="key") == before + 1
    assert _sample("tollgate_requests_total", key="rec-tight", customer="", provider="none",
                   model="none", outcome="rejected") >= 1


async def test_a_rate_limit_rejection_names_the_limit(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], lines: Callable[[], list[Any]],
        decision_schema: jsonschema.Draft202012Validator):
    snapshot = snapshot_of(_config())
    first = _call(snapshot, "rec-rpm")
    await govern.admit(first)
    await govern.finish(first)
    second = _call(snapshot, "rec-rpm")
    with pytest.raises(RateLimited):
        await govern.admit(second)
    second.outcome, second.error_code = "rejected", "rate_limit_exceeded"
    record(second)
    [line] = lines()
    decision_schema.validate(line)
    assert line["governance"]["rejection"]["limit"] == "requests_per_minute"
    assert line["governance"]["rate_limits"][0]["requests_remaining"] == 0
    assert _sample("tollgate_rejections_total", key="rec-rpm", customer="",
                   limit="requests_per_minute", scope="key") >= 1


async def test_a_key_without_limits_is_not_governed_and_an_unknown_caller_is_not_reached(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], lines: Callable[[], list[Any]],
        decision_schema: jsonschema.Draft202012Validator):
    snapshot = snapshot_of(_config())
    plain = _call(snapshot, "rec-plain", stream=True)
    await govern.admit(plain)
    _served(plain, Usage(input_tokens=10, output_tokens=5))
    plain.first_token_seconds = 0.123
    await govern.finish(plain)
    record(plain)
    stranger = _call(snapshot, None)
    stranger.outcome, stranger.error_code = "rejected", "invalid_api_key"
    record(stranger)
    plain_line, stranger_line = lines()
    for line in (plain_line, stranger_line):
        decision_schema.validate(line)
    assert plain_line["governance"]["decision"] == "not_governed"
    assert plain_line["ttft_ms"] == 123.0
    assert stranger_line["key"] == "-" and stranger_line["customer"] is None
    assert stranger_line["governance"]["decision"] == "not_reached"


async def test_bodies_are_logged_truncated_only_for_a_key_that_opts_in(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], lines: Callable[[], list[Any]],
        decision_schema: jsonschema.Draft202012Validator):
    snapshot = snapshot_of(_config())
    verbose = _call(snapshot, "rec-verbose")
    verbose.body["messages"].append({"role": "user", "content": "x" * 10_000})
    await govern.admit(verbose)
    _served(verbose, Usage(input_tokens=10, output_tokens=5))
    verbose.response_body = b'{"choices":[{"message":{"content":"Echo"}}]}'
    await govern.finish(verbose)
    record(verbose)
    [line] = lines()
    decision_schema.validate(line)
    assert PROMPT in line["request_body"]
    assert len(line["request_body"].encode()) <= BODY_LOG_BYTES
    assert line["response_body"] == '{"choices":[{"message":{"content":"Echo"}}]}'
    assert line["bodies_truncated"] is True


async def test_no_decision_line_is_built_below_info(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], lines: Callable[[], list[Any]]):
    logging.getLogger("tollgate.access").setLevel(logging.WARNING)
    snapshot = snapshot_of(_config())
    call = _call(snapshot, "rec-plain")
    call.outcome = "ok"
    before = _sample("tollgate_requests_total", key="rec-plain", customer="",
                     provider="none", model="none", outcome="ok")
    record(call)
    assert lines() == []
    assert _sample("tollgate_requests_total", key="rec-plain", customer="",
                   provider="none", model="none", outcome="ok") == before + 1
