"""The status publisher: two gateways, one Lease; spend and conditions on the VirtualKeys, only
for keys that changed, only from the leader, backing off when the API fails."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openai import OpenAI, RateLimitError

from tests.fakes.openai_upstream import FakeOpenAI
from tests.k8s_gateway.conftest import Cluster
from tests.k8s_gateway.support import (
    CONFIG_NAME,
    FLAT_MODEL,
    NAMESPACE,
    KubeGateway,
    config_map_bodies,
    gateway_config,
    key_entry,
    put_config_maps,
    token_for,
    virtual_key,
)
from tests.operator_e2e.api import LEASE, VIRTUAL_KEY, condition
from tests.support.redis import RedisServer
from tollgate.gateway.money import format_usd

ALPHA, BETA = "tenants.alpha", "tenants.beta"
STATUS_PATCH = r"/virtualkeys/[a-z]+/status$"
READY = {"type": "Ready", "status": "True", "observedGeneration": 1,
         "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "Accepted",
         "message": "Served."}


@dataclass
class Pair:
    cluster: Cluster
    gateways: dict[str, KubeGateway]
    revision: str

    def leader(self) -> KubeGateway:
        def holder() -> str | None:
            lease = self.cluster.api.get(LEASE, NAMESPACE, f"{CONFIG_NAME}-status")
            return ((lease or {}).get("spec") or {}).get("holderIdentity")
        name = self.cluster.wait(holder, "a status publisher to lead", timeout=10)
        return self.gateways[name]

    def follower(self) -> KubeGateway:
        leader = self.leader()
        return next(g for g in self.gateways.values() if g is not leader)

    def vk(self, name: str) -> dict[str, Any]:
        body = self.cluster.api.get(VIRTUAL_KEY, "tenants", name)
        assert body is not None
        return body

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.vk(name).get("status") or {})


@pytest.fixture
def pair(cluster: Cluster, upstream: FakeOpenAI, redis_server: RedisServer) -> Iterator[Pair]:
    """Two gateways sharing one Redis, serving two budgeted keys whose VirtualKeys exist (with
    a Ready condition, as the operator would have written it)."""
    keys = [key_entry(ALPHA, budget={"maxUSD": "1", "period": "monthly"}),
            key_entry(BETA, budget={"maxUSD": "1", "period": "monthly"},
                      rateLimit={"requestsPerMinute": 1000})]
    config = gateway_config(upstream.base_url, keys, store_url=redis_server.url)
    _flush(redis_server)  # one Redis for the session: every test starts from zero spend
    put_config_maps(cluster.api, config_map_bodies(config))
    for name in ("alpha", "beta"):
        cluster.api.create(virtual_key(name))
        response = cluster.api.client.patch(
            f"/apis/tollgate.dev/v1alpha1/namespaces/tenants/virtualkeys/{name}/status",
            json={"status": {"conditions": [READY]}},
            headers={"Content-Type": "application/merge-patch+json"})
        assert response.status_code == 200, response.text
    gateways = {name: cluster.start_gateway(name, interval=0.5, lease_seconds=4.0)
                for name in ("gw-a", "gw-b")}
    yield Pair(cluster, gateways, str(config["revision"]))


def _flush(server: RedisServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(64).startswith(b"+OK")


def _chat(gateway: KubeGateway, key_id: str, count: int) -> None:
    with OpenAI(base_url=gateway.base_url, api_key=token_for(key_id), max_retries=0,
                timeout=10) as client:
        for _ in range(count):
            reply = client.chat.completions.create(
                model=FLAT_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=20)
            assert reply.choices[0].message.content


def _spent(pair: Pair, name: str) -> str | None:
    return (pair.status(name).get("spend") or {}).get("spentUSD")


def test_the_leader_publishes_spend_and_conditions_for_changed_keys_only(
        pair: Pair, upstream: FakeOpenAI) -> None:
    cluster = pair.cluster
    leader, follower = pair.leader(), pair.follower()
    # The first round writes every key: zero spend, conditions evaluated, Ready untouched.
    cluster.wait(lambda: _spent(pair, "alpha") == "0.00" and _spent(pair, "beta") == "0.00",
                 "the first round published")
    status = pair.status("beta")
    assert status["spend"] == {"period": status["spend"]["period"], "spentUSD": "0.00",
                               "remainingUSD": "1.00", "reservedUSD": "0.00"}
    assert condition(pair.vk("beta"), "Ready") == READY
    for type_, expected in (("BudgetExceeded", "False"), ("RateLimited", "False"),
                            ("Degraded", "False")):
        found = condition(pair.vk("beta"), type_)
        assert found is not None and found["status"] == expected, (type_, found)
    assert condition(pair.vk("beta"), "RateLimited")["reason"] == "WithinRateLimits"
    assert condition(pair.vk("alpha"), "RateLimited")["reason"] == "NoRateLimit"
    cluster.wait(lambda: (condition(pair.vk("beta"), "ConfigInForce") or {}).get("status")
                 == "True", "ConfigInForce with both replicas on one revision")
    assert pair.status("beta")["servedConfigRevision"] == pair.revision
    time.sleep(1.0)  # let the rounds settle: nothing changes any more
    beta_writes = len(cluster.proxy.records("PATCH", "/virtualkeys/beta/status"))

    # Traffic on alpha through both gateways: $0.005 per request (5 output tokens).
    upstream.set_usage(prompt_tokens=3, completion_tokens=5)
    _chat(leader, ALPHA, 2)
    _chat(follower, ALPHA, 2)
    cluster.wait(lambda: _spent(pair, "alpha") == "0.02", "alpha's spend published",
                 timeout=10)
    usage = pair.status("alpha")["usage"]
    # Counts are the publishing replica's own (documented): the leader served two.
    assert usage["requests"] == 2 and usage["rejectedRequests"] == 0
    assert usage["lastUsedAt"].endswith("Z")
    assert pair.status("alpha")["spend"]["remainingUSD"] == "0.98"

    time.sleep(1.5)  # three more rounds
    assert len(cluster.proxy.records("PATCH", "/virtualkeys/beta/status")) == beta_writes, \
        "an unchanged key was written again"
    assert condition(pair.vk("alpha"), "Ready") == READY

    # Only the leader wrote, and only it says so in its log.
    patches = cluster.proxy.records("PATCH", STATUS_PATCH)
    assert patches and {r.agent for r in patches} == {f"tollgate-gateway/{leader.identity}"}
    assert leader.events("status_published") and not follower.events("status_published")


def test_a_spent_budget_shows_as_a_condition(pair: Pair, upstream: FakeOpenAI) -> None:
    cluster = pair.cluster
    upstream.set_usage(prompt_tokens=3, completion_tokens=20)  # $0.02 per request
    gateway = pair.leader()
    with OpenAI(base_url=gateway.base_url, api_key=token_for(BETA), max_retries=0) as client:
        rejected = 0
        for _ in range(60):
            try:
                client.chat.completions.create(
                    model=FLAT_MODEL, messages=[{"role": "user", "content": "hi"}],
                    max_tokens=20)
            except RateLimitError as exc:
                assert exc.status_code == 429
                rejected += 1
                break
    assert rejected == 1
    cluster.wait(lambda: (condition(pair.vk("beta"), "BudgetExceeded") or {}).get("status")
                 == "True", "BudgetExceeded True", timeout=10)
    found = condition(pair.vk("beta"), "BudgetExceeded")
    assert found["reason"] == "BudgetSpent" and "1.00 USD" in found["message"]
    cluster.wait(lambda: (pair.status("beta").get("usage") or {}).get("rejectedRequests") == 1,
                 "the rejection counted")


def test_publishing_backs_off_when_the_api_fails_and_requests_keep_flowing(
        pair: Pair, upstream: FakeOpenAI) -> None:
    cluster = pair.cluster
    leader = pair.leader()
    cluster.wait(lambda: _spent(pair, "alpha") == "0.00", "the first round published")
    upstream.set_usage(prompt_tokens=3, completion_tokens=5)

    cluster.proxy.fail(500, method="PATCH", path=STATUS_PATCH)
    started = time.monotonic()
    latencies = []
    while time.monotonic() - started < 6.0:
        begun = time.monotonic()
        _chat(leader, ALPHA, 1)
        latencies.append(time.monotonic() - begun)
        time.sleep(0.05)
    attempts = [r for r in cluster.proxy.records("PATCH", STATUS_PATCH) if r.injected]
    # Without backoff: one round every 0.5 s, 12 in 6 s. With it: 0.5 → 1 → 2 → 4 s apart,
    # and each failing round stops at its first error.
    assert 1 <= len(attempts) <= 6, [round(r.at - started, 2) for r in attempts]
    assert max(latencies) < 1.0, latencies  # serving never waited on the API
    assert leader.events("status_publish_failed")
    assert _spent(pair, "alpha") == "0.00"

    cluster.proxy.heal()
    expected = format_usd(5000 * len(latencies))
    cluster.wait(lambda: _spent(pair, "alpha") == expected,
                 "the spend published once the API answers again", timeout=15)


def test_a_standby_takes_over_and_adds_its_counts_to_the_published_ones(
        pair: Pair, upstream: FakeOpenAI) -> None:
    cluster = pair.cluster
    leader, follower = pair.leader(), pair.follower()
    upstream.set_usage(prompt_tokens=3, completion_tokens=5)
    _chat(leader, ALPHA, 2)
    _chat(follower, ALPHA, 1)  # counted by the follower, not published while it follows
    # Spend comes from the store (all three requests); counts are the leader's own (two).
    cluster.wait(lambda: _spent(pair, "alpha") == "0.015" and
                 (pair.status("alpha").get("usage") or {}).get("requests") == 2,
                 "the leader's round published")

    assert leader.stop() in (0, -15)  # a clean stop: releases the Lease and its roster entry
    cluster.wait(lambda: pair.leader() is follower, "the standby leading", timeout=10)
    cluster.wait(lambda: pair.status("alpha")["usage"]["requests"] == 3,
                 "the new leader's count added to the published one")
    _chat(follower, ALPHA, 1)
    cluster.wait(lambda: _spent(pair, "alpha") == "0.02", "the new leader publishing")
    cluster.wait(lambda: pair.status("alpha")["usage"]["requests"] == 4, "counted on")
    assert httpx.get(follower.url + "/readyz", timeout=2).json()["configRevision"] == \
        pair.revision
