"""Budget alerts end to end: two gateways (two replicas) share one store and evaluate every
0.2 s; a JSON and a Slack webhook on a local receiver get each threshold exactly once, the JSON
one only after its first two deliveries failed; /v1/key/info shows the exhaustion forecast."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.helpers import provider, sync_client, wait_until
from tests.integration.observability.receivers import Receiver, running_receiver
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess, start_gateway

TOKEN = "tg-obs-alerts-9f9f9f"
SECRET_PATH = "T000/B000/XXXXsecretXXXX"
PROMPT = "a prompt that must stay private 5151"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as found:
        yield found


def _config(tmp_path: Path, fake: FakeOpenAI) -> dict[str, Any]:
    return config_doc(
        providers=[provider("up", fake, key_env="A_KEY", models=("m-al",))],
        pricing=[{"provider": "up", "model": "m-al", "inputPerMillionUSD": "3",
                  "outputPerMillionUSD": "0"}],
        keys=[key_entry("al-key", TOKEN, customerId="alco", budget={"maxUSD": "0.01"})],
        store={"path": str(tmp_path / "shared-state.db")},
        alerts={
            "evaluationIntervalSeconds": 0.2,
            "webhooks": [
                {"name": "ops-json", "type": "json", "urlFrom": {"env": "HOOK_JSON"},
                 "kinds": ["budget_threshold"], "maxAttempts": 5},
                {"name": "ops-slack", "type": "slack", "urlFrom": {"env": "HOOK_SLACK"},
                 "kinds": ["budget_threshold"]},
            ],
        },
    )


def _spend(gateway: GatewayProcess, requests: int) -> None:
    with sync_client(gateway, TOKEN) as client:
        for _ in range(requests):
            client.chat.completions.create(
                model="m-al", max_tokens=1, messages=[{"role": "user", "content": PROMPT}])


def test_each_threshold_reaches_each_webhook_once_across_two_replicas(
        tmp_path: Path, openai_upstream: FakeOpenAI, receiver: Receiver):
    openai_upstream.set_usage(prompt_tokens=1000, completion_tokens=1)  # $0.003 a request
    env = {"A_KEY": "sk-al", "HOOK_JSON": receiver.url(f"/json/{SECRET_PATH}"),
           "HOOK_SLACK": receiver.url(f"/slack/{SECRET_PATH}")}
    config = _config(tmp_path, openai_upstream)
    one = start_gateway(tmp_path / "one.yaml", config=config, env=env)
    two = start_gateway(tmp_path / "two.yaml", config=config, env=env)
    json_path, slack_path = f"/json/{SECRET_PATH}", f"/slack/{SECRET_PATH}"

    def delivered(path: str, count: int) -> None:
        receiver.wait_for(lambda got: sum(r.body.startswith(b"{") for r in got) >= count,
                          path=path, timeout=15)

    try:
        receiver.fail_next(503, 503)  # the first two deliveries fail (one to each webhook)
        _spend(one, 2)  # $0.006: 60 %
        delivered(json_path, 2)  # the failed try and the retry
        _spend(two, 1)  # $0.009: 90 %, through the other replica
        delivered(json_path, 3)
        _spend(one, 1)  # $0.012: 120 % (admitted: its hold fitted)
        delivered(json_path, 4)
        delivered(slack_path, 4)
        time.sleep(1.0)  # five more evaluation passes on each replica: nothing new
    finally:
        one.stop()
        two.stop()

    # The two injected 503s land on whichever deliveries reach the receiver first, and a retry
    # may arrive after later alerts: compare per threshold, not by arrival order.
    json_bodies = [r.json() for r in receiver.received(json_path)]
    slack_texts = [r.json()["text"] for r in receiver.received(slack_path)]
    assert len(json_bodies) + len(slack_texts) == 3 + 3 + 2  # 3 alerts each + 2 retries
    by_threshold: dict[int, list[dict[str, object]]] = {}
    for alert in json_bodies:
        by_threshold.setdefault(alert["details"]["thresholdPercent"], []).append(alert)
    assert sorted(by_threshold) == [50, 80, 100]
    for copies in by_threshold.values():
        assert all(copy == copies[0] for copy in copies)  # a retry resends the same alert
    sent = [by_threshold[t][0] for t in (50, 80, 100)]
    assert [a["severity"] for a in sent] == ["info", "warning", "critical"]
    assert all(a["version"] == "tollgate.dev/alert/v1" and a["kind"] == "budget_threshold"
               and a["keyId"] == "al-key" and a["customerId"] == "alco"
               and a["period"] == sent[0]["period"] for a in sent)
    assert [a["dedupKey"].rsplit("/", 1)[-1] for a in sent] == ["50", "80", "100"]
    for threshold in (50, 80, 100):
        assert 1 <= sum(f"crossing {threshold}%" in text for text in slack_texts) <= 3
    everything = b"".join(r.body for r in receiver.received())
    assert PROMPT.encode() not in everything and TOKEN.encode() not in everything
    for gateway in (one, two):
        assert SECRET_PATH not in gateway.logs()  # webhook URLs are credentials


def test_key_info_shows_when_the_budget_runs_out(
        tmp_path: Path, openai_upstream: FakeOpenAI, receiver: Receiver):
    openai_upstream.set_usage(prompt_tokens=100, completion_tokens=1)  # $0.0003 a request
    env = {"A_KEY": "sk-al", "HOOK_JSON": receiver.url("/json-2"),
           "HOOK_SLACK": receiver.url("/slack-2")}
    gateway = start_gateway(tmp_path / "g.yaml", config=_config(tmp_path, openai_upstream),
                            env=env, log_level="warning")
    try:
        _spend(gateway, 3)

        def forecast() -> dict[str, Any] | None:
            info = httpx.get(gateway.base_url + "/key/info", timeout=5,
                             headers={"authorization": f"Bearer {TOKEN}"}).json()
            found: dict[str, Any] | None = info["budgets"][0]["forecast"]
            return found

        def rate() -> float:
            found = forecast()
            return float(found["spendRateUSDPerHour"]) if found else 0.0

        # the evaluator reads the ledger every 0.2 s: wait until it has seen all three
        wait_until(lambda: rate() >= 0.000037, timeout=5, what="a forecast from the ledger")
        found = forecast()
        assert found is not None
        # $0.0009 over the last 23 to 24 hours
        assert 0.000037 <= float(found["spendRateUSDPerHour"]) <= 0.000040
        exhausts = datetime.fromisoformat(found["exhaustsAt"])
        assert timedelta(days=9) < exhausts - datetime.now(UTC) < timedelta(days=11)  # $0.0091 left
        assert found["beforePeriodEnd"] is False
    finally:
        gateway.stop()
