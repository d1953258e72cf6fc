"""Neither the virtual-key token nor the provider's API key ever leaves the gateway: not in an
error body (even when the upstream's own error text quotes the key), not in a log line (even at
debug level), not in /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, break_stream_after, error_status
from tests.integration.helpers import (
    log_events,
    provider,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
    wait_until,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-secret-tenant-61ffe0c2d9"
WRONG_TOKEN = "tg-secret-guess-a7a7a7a7a7"
PROVIDER_KEY = "sk-live-TOPSECRET-93ab71cd0e55"
SECRETS = (TOKEN, WRONG_TOKEN, PROVIDER_KEY)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            openai_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[provider("upstream", openai_upstream_server, key_env="SECRETS_KEY",
                            models=("m",))],
        keys=[key_entry("tenant", TOKEN)],
    )
    with running_gateway(tmp_path_factory.mktemp("secrets"), config,
                         {"SECRETS_KEY": PROVIDER_KEY}, log_level="debug") as process:
        yield process


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_upstream_4xx_quoting_the_provider_key_is_scrubbed(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, stream: bool):
    openai_upstream.fail("m", error_status(
        400, f"Request signed with {PROVIDER_KEY} has an invalid 'temperature'."))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="m", messages=user("hi"), stream=stream)
    error = caught.value
    assert error.response.status_code == 400
    assert "has an invalid 'temperature'" in error.message
    _assert_no_secret(error.response.text)


def test_every_field_of_an_upstream_4xx_is_scrubbed(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.fail("m", error_status(
        422, f"bad key {PROVIDER_KEY}", code=f"key:{PROVIDER_KEY}",
        param=f"headers.authorization=Bearer {PROVIDER_KEY}"))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(model="m", messages=user("hi"))
    _assert_no_secret(caught.value.response.text)


@pytest.mark.parametrize("status", [401, 429, 500])
def test_upstream_errors_that_are_not_passed_through_do_not_leak_their_text(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, status: int):
    openai_upstream.fail("m", error_status(
        status, f"Incorrect API key provided: {PROVIDER_KEY}."))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="m", messages=user("hi"))
    assert caught.value.status_code >= 400
    _assert_no_secret(caught.value.response.text)
    assert "Incorrect API key" not in caught.value.response.text


def test_a_broken_stream_error_event_does_not_leak_secrets(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.fail("m", break_stream_after(1))
    body = {"model": "m", "messages": user("break"), "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=15,
                      headers={"authorization": f"Bearer {TOKEN}"}) as response:
        text = response.read().decode()
    assert '"error"' in text
    _assert_no_secret(text)


def _fresh_gateway(gateway_factory: Callable[..., GatewayProcess],
                   fake: FakeOpenAI) -> GatewayProcess:
    """A gateway of its own, so its logs and metrics hold only this test's requests."""
    config = config_doc(
        providers=[provider("upstream", fake, key_env="SECRETS_KEY", models=("m",))],
        keys=[key_entry("tenant", TOKEN)],
    )
    return gateway_factory(config, env={"SECRETS_KEY": PROVIDER_KEY}, log_level="debug")


def test_the_logs_and_metrics_never_contain_a_token_or_the_provider_key(
        gateway_factory: Callable[..., GatewayProcess], openai_upstream: FakeOpenAI):
    gateway = _fresh_gateway(gateway_factory, openai_upstream)
    openai_upstream.fail("fails", error_status(400, f"echoing {PROVIDER_KEY}"))
    openai_upstream.fail("rejected", error_status(401, f"Incorrect API key: {PROVIDER_KEY}"))
    with sync_client(gateway, TOKEN) as client:
        client.chat.completions.create(model="m", messages=user("ok"))
        list(client.chat.completions.create(model="m", messages=user("ok"), stream=True))
        for model in ("upstream/fails", "upstream/rejected"):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model=model, messages=user("x"))
    with sync_client(gateway, WRONG_TOKEN) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="m", messages=user("guess"))
    httpx.post(gateway.base_url + "/chat/completions", headers={"x-api-key": WRONG_TOKEN},
               json={"model": "m", "messages": user("guess")}, timeout=15)
    _assert_no_secret(httpx.get(gateway.url + "/metrics", timeout=15).text)
    wait_until(lambda: sum(e.get("event") == "request" for e in log_events(gateway)) == 6,
               what="one decision-log line for each of the 6 requests")
    _assert_no_secret(gateway.logs())


def test_an_upstream_error_code_quoting_the_key_reaches_neither_logs_nor_metrics(
        gateway_factory: Callable[..., GatewayProcess], openai_upstream: FakeOpenAI):
    """The upstream chooses its error `code`; it must not become a log field or a metric
    label as it is (labels come from configuration only)."""
    gateway = _fresh_gateway(gateway_factory, openai_upstream)
    openai_upstream.fail("m", error_status(400, "bad request", code=f"key:{PROVIDER_KEY}"))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=user("x"))
    wait_for_log(gateway, lambda e: e.get("event") == "request")
    _assert_no_secret(httpx.get(gateway.url + "/metrics", timeout=15).text)
    _assert_no_secret(gateway.logs())
