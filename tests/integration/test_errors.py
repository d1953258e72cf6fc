"""Requests the gateway refuses itself: bad bodies (400/413), bad keys (401), unknown paths —
all in OpenAI's error shape, all with `x-request-id`, none reaching the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.helpers import provider, running_gateway, sync_client, user
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-errors-tenant-e91f"
DISABLED = "tg-errors-disabled-4410"
EXPIRED = "tg-errors-expired-7c2b"
NOT_YET_EXPIRED = "tg-errors-future-0d6a"
MAX_BODY = 2048


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            openai_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[provider("upstream", openai_upstream_server, key_env="ERRORS_KEY",
                            models=("m",))],
        keys=[
            key_entry("tenant", TOKEN),
            key_entry("disabled", DISABLED, enabled=False),
            key_entry("expired", EXPIRED, expiresAt="2020-01-01T00:00:00Z"),
            key_entry("future", NOT_YET_EXPIRED, expiresAt="2099-01-01T00:00:00Z"),
        ],
        server={"maxBodyBytes": MAX_BODY},
    )
    with running_gateway(tmp_path_factory.mktemp("errors"), config,
                         {"ERRORS_KEY": "sk-fake-errors"}) as process:
        yield process


def _post(gateway: GatewayProcess, path: str, content: bytes | Any, *,
          headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(gateway.base_url + path, content=content, timeout=15,
                      headers={"authorization": f"Bearer {TOKEN}",
                               "content-type": "application/json", **(headers or {})})


def _error(response: httpx.Response) -> dict[str, Any]:
    """The OpenAI error object of a response, checking the shape on the way."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


BAD_BODIES = {
    "not-json": (b'{"model": "m", "messages": [', None),
    "empty": (b"", None),
    "json-array": (b'[{"model": "m"}]', None),
    "no-model": (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
    "no-messages": (b'{"model": "m"}', "messages"),
    "empty-messages": (b'{"model": "m", "messages": []}', "messages"),
    "message-without-role": (b'{"model": "m", "messages": [{"content": "hi"}]}', "messages[0]"),
    "stream-not-boolean": (b'{"model": "m", "messages": [{"role": "user", "content": "x"}],'
                           b' "stream": "yes"}', "stream"),
}


@pytest.mark.parametrize(("content", "param"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_chat_body_is_400_naming_the_parameter(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, content: bytes,
        param: str | None):
    response = _post(gateway, "/chat/completions", content)
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert response.headers["x-request-id"]
    assert openai_upstream.requests == []


def test_embeddings_without_input_is_400_naming_input(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    response = _post(gateway, "/embeddings", b'{"model": "m"}')
    assert response.status_code == 400
    assert _error(response)["param"] == "input"
    assert openai_upstream.requests == []


def test_a_body_over_the_limit_is_413_through_the_sdk(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="m", messages=user("x" * (MAX_BODY + 10)))
    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"
    assert openai_upstream.requests == []


def test_a_chunked_body_over_the_limit_is_413_without_content_length(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    def pieces() -> Iterator[bytes]:
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(8):
            yield b"y" * 512
        yield b'"}]}'

    response = _post(gateway, "/chat/completions", pieces())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"
    assert openai_upstream.requests == []


def test_a_body_just_under_the_limit_is_served(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        completion = client.chat.completions.create(model="m", messages=user("z" * 1500))
    assert completion.choices[0].message.content == "Echo: " + "z" * 1500


KEY_FAILURES = {
    "missing": ({}, "invalid_api_key"),
    "unknown": ({"authorization": "Bearer tg-nobody-knows-me"}, "invalid_api_key"),
    "not-bearer": ({"authorization": f"Basic {TOKEN}"}, "invalid_api_key"),
    "disabled": ({"authorization": f"Bearer {DISABLED}"}, "key_disabled"),
    "expired": ({"authorization": f"Bearer {EXPIRED}"}, "key_expired"),
}


@pytest.mark.parametrize(("headers", "code"), KEY_FAILURES.values(), ids=KEY_FAILURES.keys())
def test_a_request_without_a_usable_key_is_401(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, headers: dict[str, str],
        code: str):
    body = {"model": "m", "messages": user("let me in")}
    response = httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers,
                          timeout=15)
    assert response.status_code == 401
    error = _error(response)
    assert (error["type"], error["code"]) == ("authentication_error", code)
    assert response.headers["x-request-id"]
    assert openai_upstream.requests == []
    for token in (TOKEN, DISABLED, EXPIRED, "tg-nobody-knows-me"):
        assert token not in response.text


def test_the_sdk_raises_authentication_error_for_an_expired_key(gateway: GatewayProcess):
    with sync_client(gateway, EXPIRED) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(model="m", messages=user("hi"))
    assert caught.value.code == "key_expired"


def test_a_key_with_a_future_expiry_is_served(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, NOT_YET_EXPIRED) as client:
        completion = client.chat.completions.create(model="m", messages=user("still valid"))
    assert completion.choices[0].message.content == "Echo: still valid"


def test_the_x_api_key_header_authenticates_like_bearer(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    response = httpx.post(gateway.base_url + "/chat/completions", timeout=15,
                          json={"model": "m", "messages": user("anthropic style")},
                          headers={"x-api-key": TOKEN})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: anthropic style"


REQUESTS = {
    "chat-ok": ("POST", "/v1/chat/completions",
                {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, 200),
    "stream-ok": ("POST", "/v1/chat/completions",
                  {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "stream": True}, 200),
    "bad-body": ("POST", "/v1/chat/completions", {"model": "m"}, 400),
    "unknown-model": ("POST", "/v1/chat/completions",
                      {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404),
    "unknown-path": ("GET", "/v1/assistants", None, 404),
    "wrong-method": ("GET", "/v1/chat/completions", None, 405),
    "models": ("GET", "/v1/models", None, 200),
    "healthz": ("GET", "/healthz", None, 200),
}


@pytest.mark.parametrize(("method", "path", "body", "status"), REQUESTS.values(),
                         ids=REQUESTS.keys())
def test_every_response_carries_a_request_id(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, method: str, path: str,
        body: dict[str, Any] | None, status: int):
    response = httpx.request(method, gateway.url + path, json=body, timeout=15,
                             headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    if status >= 400:
        _error(response)


def test_a_sane_incoming_request_id_is_echoed(gateway: GatewayProcess,
                                              openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=user("trace me"),
            extra_headers={"x-request-id": "trace-2026.11:abc_DEF-42"})
    assert raw.headers["x-request-id"] == "trace-2026.11:abc_DEF-42"


@pytest.mark.parametrize("incoming", ["has spaces in it", "x" * 129, "semi;colon", "ünïcode"],
                         ids=["spaces", "too-long", "punctuation", "non-ascii"])
def test_an_unsafe_incoming_request_id_is_replaced(gateway: GatewayProcess, incoming: str):
    response = httpx.get(gateway.url + "/healthz", timeout=15,
                         headers={"x-request-id": incoming.encode()})
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["x-request-id"] != incoming


def test_error_responses_echo_the_incoming_request_id_too(gateway: GatewayProcess):
    response = httpx.post(gateway.base_url + "/chat/completions", content=b"{",
                          headers={"x-request-id": "client-77"}, timeout=15)
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "client-77"
