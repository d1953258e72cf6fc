"""Scripted traffic through a real gateway (the OpenAI SDK against fake upstreams on
127.0.0.1), then: /metrics parsed with prometheus_client's parser, counts, sums and labels
exact; every decision-log line valid against docs/decision-log.schema.json and carrying the
figures behind its decision; tokens and prompts nowhere in logs, metrics or error bodies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, error_status
from tests.integration.governance.support import wait_for_a_fresh_rate_window
from tests.integration.helpers import provider, running_gateway, sync_client, wait_until
from tests.integration.observability.support import (
    Scrape,
    decisions,
    schema_validator,
    scrape,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

PROMPT = "quarterly numbers are 4411 not 9977"
VERBOSE_PROMPT = "please log this one"
TOKENS = {key: f"tg-obs-{key}-5be1c3" for key in ("met-a", "met-b", "met-tight", "met-rpm",
                                                  "met-verbose")}
WRONG_TOKEN = "tg-obs-wrong-0a0a0a"
PROVIDER_KEY = "sk-obs-upstream-77e1"
REVISION = "obs-rev-1"
COST = 200_000  # 100 input tokens at $1000/M + 50 output tokens at $2000/M, in micro-dollars


def _config(openai_fake: FakeOpenAI, backup_fake: FakeOpenAI,
            revision: str = REVISION) -> dict[str, Any]:
    return config_doc(
        providers=[provider("primary", openai_fake, key_env="OBS_KEY", models=("m-a",)),
                   provider("backup", backup_fake, key_env="OBS_KEY", models=("m-a",))],
        models=[{"name": "chat", "targets": [{"provider": "primary", "model": "m-a"},
                                             {"provider": "backup", "model": "m-a"}]}],
        pricing=[{"provider": p, "model": "m-a", "inputPerMillionUSD": "1000",
                  "outputPerMillionUSD": "2000"} for p in ("primary", "backup")],
        customers=[{"id": "acme", "budget": {"maxUSD": "100"}}],
        keys=[
            key_entry("met-a", TOKENS["met-a"], customerId="acme", budget={"maxUSD": "10"},
                      rateLimit={"requestsPerMinute": 1000}),
            key_entry("met-b", TOKENS["met-b"]),
            key_entry("met-tight", TOKENS["met-tight"], budget={"maxUSD": "0.01"}),
            key_entry("met-rpm", TOKENS["met-rpm"], rateLimit={"requestsPerMinute": 2}),
            key_entry("met-verbose", TOKENS["met-verbose"], logBodies=True),
        ],
        revision=revision,
    )


@dataclass
class Traffic:
    gateway: GatewayProcess
    before: Scrape
    after: Scrape
    errors: list[str]


def _ask(client: openai.OpenAI, prompt: str = PROMPT, **extra: Any) -> Any:
    return client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": prompt}], max_tokens=50, **extra)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, openai_upstream_server: FakeOpenAI,
            backup_upstream_server: FakeOpenAI) -> Iterator[Traffic]:
    primary, backup = openai_upstream_server, backup_upstream_server
    for fake in (primary, backup):
        fake.reset()
        fake.set_usage(prompt_tokens=100, completion_tokens=50, cached_tokens=20,
                       reasoning_tokens=10)
    errors: list[str] = []
    with running_gateway(tmp_path_factory.mktemp("obs"), _config(primary, backup),
                         {"OBS_KEY": PROVIDER_KEY}, log_level="debug") as gateway:
        before = scrape(gateway)
        with sync_client(gateway, TOKENS["met-a"]) as client:
            for _ in range(3):
                _ask(client, extra_headers={"x-tollgate-tags": "team=search"})
            primary.fail("m-a", error_status(503))
            _ask(client)  # fails over to backup
            primary.reset()
            primary.set_usage(prompt_tokens=100, completion_tokens=50, cached_tokens=20,
                              reasoning_tokens=10)
        with sync_client(gateway, TOKENS["met-b"]) as client:
            for _ in range(2):
                stream = _ask(client, stream=True, stream_options={"include_usage": True})
                assert [c for c in stream]
        with sync_client(gateway, TOKENS["met-tight"]) as client:
            with pytest.raises(openai.RateLimitError) as refused:
                _ask(client)
            errors.append(refused.value.response.text)
        wait_for_a_fresh_rate_window()
        with sync_client(gateway, TOKENS["met-rpm"]) as client:
            _ask(client)
            _ask(client)
            with pytest.raises(openai.RateLimitError) as limited:
                _ask(client)
            errors.append(limited.value.response.text)
        with sync_client(gateway, TOKENS["met-verbose"]) as client:
            _ask(client, VERBOSE_PROMPT)
            assert [c for c in _ask(client, VERBOSE_PROMPT, stream=True)]
        with sync_client(gateway, WRONG_TOKEN) as client:
            with pytest.raises(openai.AuthenticationError) as unknown:
                _ask(client)
            errors.append(unknown.value.response.text)
        wait_until(lambda: len(decisions(gateway)) >= 13, what="every decision logged")
        yield Traffic(gateway, before, scrape(gateway), errors)


def test_requests_are_counted_by_key_customer_provider_model_and_outcome(traffic: Traffic):
    m = traffic.after
    assert m.value("tollgate_requests_total", key="met-a", customer="acme", provider="primary",
                   model="m-a", outcome="ok") == 3
    assert m.value("tollgate_requests_total", key="met-a", customer="acme", provider="backup",
                   model="m-a", outcome="ok") == 1
    assert m.value("tollgate_requests_total", key="met-b", customer="", provider="primary",
                   model="m-a", outcome="ok") == 2
    assert m.value("tollgate_requests_total", key="met-tight", customer="", provider="none",
                   model="none", outcome="rejected") == 1
    assert m.value("tollgate_requests_total", key="met-rpm", customer="", provider="none",
                   model="none", outcome="rejected") == 1
    assert m.value("tollgate_requests_total", key="-", customer="", provider="none",
                   model="none", outcome="rejected") == 1
    # label values come from configuration only
    keys = {s["key"] for s in m.series("tollgate_requests_total")}
    assert keys == {"met-a", "met-b", "met-tight", "met-rpm", "met-verbose", "-"}
    assert {s["model"] for s in m.series("tollgate_requests_total")} == {"m-a", "none"}


def test_tokens_spend_and_rejections_are_exact(traffic: Traffic):
    m = traffic.after
    for kind, per_request in (("input", 100), ("output", 50), ("cached", 20), ("reasoning", 10)):
        assert m.value("tollgate_tokens_total", key="met-a", customer="acme",
                       kind=kind) == 4 * per_request
        assert m.value("tollgate_tokens_total", key="met-b", customer="", kind=kind) == \
            2 * per_request
    assert m.value("tollgate_spend_micro_usd_total", key="met-a", customer="acme",
                   provider="primary", model="m-a") == 3 * COST
    assert m.value("tollgate_spend_micro_usd_total", key="met-a", customer="acme",
                   provider="backup", model="m-a") == COST
    assert m.value("tollgate_rejections_total", key="met-tight", customer="", limit="budget",
                   scope="key") == 1
    assert m.value("tollgate_rejections_total", key="met-rpm", customer="",
                   limit="requests_per_minute", scope="key") == 1


def test_budget_gauges_show_the_limit_and_what_is_left(traffic: Traffic):
    m = traffic.after
    assert m.value("tollgate_budget_limit_micro_usd", key="met-a") == 10_000_000
    assert m.value("tollgate_budget_remaining_micro_usd", key="met-a") == 10_000_000 - 4 * COST
    assert m.value("tollgate_customer_budget_limit_micro_usd", customer="acme") == 100_000_000
    assert m.value("tollgate_customer_budget_remaining_micro_usd",
                   customer="acme") == 100_000_000 - 4 * COST
    assert m.value("tollgate_budget_limit_micro_usd", key="met-tight") == 10_000


def test_latency_histograms_separate_the_gateway_from_the_upstream(traffic: Traffic):
    m = traffic.after
    chat_requests = 13  # every request that reached the chat endpoint, rejections included
    assert m.value("tollgate_request_duration_seconds_count", endpoint="chat") == chat_requests
    assert m.value("tollgate_gateway_overhead_seconds_count", endpoint="chat") == chat_requests
    assert m.value("tollgate_upstream_duration_seconds_count", provider="primary",
                   model="m-a") == 3 + 2 + 4  # met-a, met-b streams, met-rpm, met-verbose
    assert m.value("tollgate_upstream_duration_seconds_count", provider="backup",
                   model="m-a") == 1
    assert m.value("tollgate_time_to_first_token_seconds_count", provider="primary",
                   model="m-a") == 3
    overhead = m.value("tollgate_gateway_overhead_seconds_sum", endpoint="chat")
    total = m.value("tollgate_request_duration_seconds_sum", endpoint="chat")
    assert 0 < overhead < total
    assert m.value("tollgate_gateway_overhead_seconds_bucket", endpoint="chat",
                   le="+Inf") == chat_requests


def test_the_config_revision_is_exported_as_info_and_replaced_on_reload(
        traffic: Traffic, openai_upstream_server: FakeOpenAI,
        backup_upstream_server: FakeOpenAI):
    gateway = traffic.gateway
    assert traffic.before.series("tollgate_config_info") == [{"revision": REVISION}]
    assert traffic.before.value("tollgate_config_info", revision=REVISION) == 1
    assert traffic.before.value("tollgate_config_reloads_total", result="loaded") == 1
    gateway.write_config(_config(openai_upstream_server, backup_upstream_server, "obs-rev-2"))
    wait_until(lambda: scrape(gateway).series("tollgate_config_info") == [
        {"revision": "obs-rev-2"}], timeout=5, what="the new revision exported alone")
    assert scrape(gateway).value("tollgate_config_reloads_total", result="loaded") == 2


def test_every_decision_line_is_valid_against_the_schema(traffic: Traffic):
    validator = schema_validator()
    lines = decisions(traffic.gateway)
    assert len(lines) == 13
    for line in lines:
        validator.validate(line)


def test_decision_lines_explain_failover_and_each_rejection(traffic: Traffic):
    lines = decisions(traffic.gateway)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_key.setdefault(line["key"], []).append(line)

    tagged = by_key["met-a"][0]
    assert tagged["tags"] == {"team": "search"} and tagged["customer"] == "acme"
    assert tagged["governance"]["decision"] == "admitted"
    assert [b["scope"] for b in tagged["governance"]["budgets"]] == ["key:met-a",
                                                                    "customer:acme"]
    assert tagged["cost_usd"] == "0.20"

    failover = by_key["met-a"][3]
    assert failover["served_by"] == {"provider": "backup", "model": "m-a"}
    outcomes = [(a["provider"], a["outcome"]) for a in failover["attempts"]]
    assert outcomes[-1] == ("backup", "ok")
    assert {o for p, o in outcomes[:-1]} == {"upstream_server_error"}
    assert {p for p, o in outcomes[:-1]} == {"primary"}

    [budget] = by_key["met-tight"]
    assert budget["governance"]["decision"] == "rejected"
    assert budget["governance"]["rejection"]["reason"] == "budget_exceeded"
    assert budget["governance"]["rejection"]["scope"] == "key:met-tight"
    [figures] = budget["governance"]["budgets"]
    assert (figures["limit_usd"], figures["spent_usd"]) == ("0.01", "0.00")

    rate = by_key["met-rpm"][2]
    assert rate["governance"]["rejection"]["limit"] == "requests_per_minute"
    assert rate["governance"]["rate_limits"][0]["requests_remaining"] == 0
    assert rate["error_code"] == "rate_limit_exceeded"

    streamed = by_key["met-b"]
    assert all(line["stream"] and line["ttft_ms"] > 0 for line in streamed)
    assert all(line["governance"]["decision"] == "not_governed" for line in streamed)

    [stranger] = by_key["-"]
    assert stranger["error_code"] == "invalid_api_key"
    assert stranger["governance"]["decision"] == "not_reached"


def test_bodies_are_logged_only_for_the_key_that_opts_in(traffic: Traffic):
    lines = decisions(traffic.gateway)
    verbose, streamed = [line for line in lines if line["key"] == "met-verbose"]
    assert VERBOSE_PROMPT in verbose["request_body"]
    assert f"Echo: {VERBOSE_PROMPT}" in verbose["response_body"]
    assert verbose["bodies_truncated"] is False
    assert streamed["stream"] and '"stream":true' in streamed["request_body"]
    assert streamed["response_body"].startswith("data: {")  # the SSE the client was sent
    assert "[DONE]" in streamed["response_body"]
    assert all("request_body" not in line for line in lines if line["key"] != "met-verbose")


def test_tokens_and_prompts_appear_in_no_log_metric_or_error(traffic: Traffic):
    texts = {"logs": traffic.gateway.logs(), "metrics": traffic.after.text,
             "errors": "\n".join(traffic.errors),
             "key info": httpx.get(traffic.gateway.base_url + "/key/info", timeout=5,
                                   headers={"authorization": f"Bearer {TOKENS['met-a']}"}).text}
    for where, text in texts.items():
        for secret in (*TOKENS.values(), WRONG_TOKEN, PROVIDER_KEY, PROMPT):
            assert secret not in text, f"{secret!r} leaked into {where}"
