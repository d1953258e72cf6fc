"""How a requested model becomes a route: aliases, `provider/model`, a key's fallback chain,
and the key's allow-lists (403) — plus unknown models (404) and GET /v1/models."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, drop_connection, error_status
from tests.integration.helpers import (
    provider,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

OPEN = "tg-routing-open-1d7e"
ALPHA_ONLY = "tg-routing-alpha-only-52c9"
FEW_MODELS = "tg-routing-few-models-a3b0"
ALPHA_KEY = "sk-fake-alpha-0001"
BETA_KEY = "sk-fake-beta-0002"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, openai_upstream_server: FakeOpenAI,
            backup_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[
            provider("alpha", openai_upstream_server, key_env="ROUTING_ALPHA_KEY",
                     models=("alpha-small", "shared-model")),
            provider("beta", backup_upstream_server, key_env="ROUTING_BETA_KEY",
                     models=("beta-large", "shared-model")),
            {"name": "demo", "type": "mock", "models": ["mock-chat", "mock-embed"]},
        ],
        models=[{"name": "smart", "targets": [{"provider": "beta", "model": "beta-large"},
                                              {"provider": "alpha", "model": "alpha-small"}]}],
        keys=[
            key_entry("open", OPEN, fallbacks=[
                {"provider": "alpha", "model": "alpha-small"},
                {"provider": "beta", "model": "beta-large"},
                {"provider": "demo", "model": "mock-chat"},
            ]),
            key_entry("alpha-only", ALPHA_ONLY, allowedProviders=["alpha"]),
            key_entry("few-models", FEW_MODELS, allowedModels=["smart", "mock-chat"]),
        ],
    )
    env = {"ROUTING_ALPHA_KEY": ALPHA_KEY, "ROUTING_BETA_KEY": BETA_KEY}
    with running_gateway(tmp_path_factory.mktemp("routing"), config, env) as process:
        yield process


def test_an_alias_sends_its_first_target_the_targets_own_model_name(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    with sync_client(gateway, OPEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="smart", messages=user("alias please"))
    assert raw.parse().choices[0].message.content == "Echo: alias please"
    assert (raw.headers["x-tollgate-provider"], raw.headers["x-tollgate-model"]) \
        == ("beta", "beta-large")
    [received] = backup_upstream.requests
    assert received.model == "beta-large"
    assert openai_upstream.requests == []


def test_an_alias_fails_over_to_its_next_target(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    backup_upstream.fail("beta-large", error_status(503))
    with sync_client(gateway, FEW_MODELS) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="smart", messages=user("second choice"))
    assert (raw.headers["x-tollgate-provider"], raw.headers["x-tollgate-model"]) \
        == ("alpha", "alpha-small")
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert [r.model for r in openai_upstream.requests] == ["alpha-small"]


def test_provider_slash_model_pins_the_provider(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    with sync_client(gateway, ALPHA_ONLY) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="alpha/shared-model", messages=user("pinned"))
    assert raw.headers["x-tollgate-provider"] == "alpha"
    assert [r.model for r in openai_upstream.requests] == ["shared-model"]
    assert backup_upstream.requests == []


def test_a_model_served_by_two_providers_goes_to_the_first_declared(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    with sync_client(gateway, OPEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="shared-model", messages=user("who serves me"))
    assert raw.headers["x-tollgate-provider"] == "alpha"
    assert backup_upstream.requests == []


def test_the_key_fallback_chain_is_tried_in_its_declared_order(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    openai_upstream.fail("alpha-small", error_status(500))
    backup_upstream.fail("beta-large", drop_connection())
    with sync_client(gateway, OPEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="alpha-small", messages=user("last resort"))
    assert raw.parse().choices[0].message.content \
        == "This is Tollgate's mock provider. You said: last resort"
    assert (raw.headers["x-tollgate-provider"], raw.headers["x-tollgate-model"]) \
        == ("demo", "mock-chat")
    assert raw.headers["x-tollgate-attempts"] == "3"
    request_id = raw.headers["x-request-id"]
    decision = wait_for_log(gateway, lambda e: e.get("event") == "request"
                            and e.get("request_id") == request_id)
    assert [(a["provider"], a["model"], a["outcome"]) for a in decision["attempts"]] == [
        ("alpha", "alpha-small", "upstream_server_error"),
        ("beta", "beta-large", "upstream_unreachable"),
        ("demo", "mock-chat", "ok"),
    ]


def test_a_key_restricted_to_a_provider_never_fails_over_outside_it(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    openai_upstream.fail("shared-model", error_status(500))
    with sync_client(gateway, ALPHA_ONLY) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="shared-model", messages=user("stay home"))
    assert caught.value.status_code == 502
    assert backup_upstream.requests == []


def test_a_model_outside_allowed_models_is_refused_with_403(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, FEW_MODELS) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.chat.completions.create(model="alpha-small", messages=user("nope"))
    assert caught.value.code == "model_not_allowed"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "permission_error"
    assert caught.value.body["param"] == "model"
    assert openai_upstream.requests == []


def test_a_model_only_on_a_disallowed_provider_is_refused_with_403(
        gateway: GatewayProcess, backup_upstream: FakeOpenAI):
    with sync_client(gateway, ALPHA_ONLY) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.chat.completions.create(model="beta-large", messages=user("nope"))
    assert caught.value.code == "provider_not_allowed"
    assert backup_upstream.requests == []


@pytest.mark.parametrize("model", ["gpt-9-ultra", "nosuchprovider/alpha-small"],
                         ids=["unknown-name", "unknown-provider-prefix"])
def test_an_unknown_model_is_404_model_not_found(gateway: GatewayProcess, model: str):
    with sync_client(gateway, OPEN) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model=model, messages=user("anyone?"))
    assert caught.value.code == "model_not_found"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["param"] == "model"
    assert model in caught.value.message


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (OPEN, ["alpha-small", "beta-large", "mock-chat", "mock-embed", "shared-model",
                "smart"]),
        (ALPHA_ONLY, ["alpha-small", "shared-model", "smart"]),
        (FEW_MODELS, ["mock-chat", "smart"]),
    ],
    ids=["unrestricted-key", "provider-restricted-key", "model-restricted-key"],
)
def test_the_model_list_shows_only_what_the_key_may_call(
        gateway: GatewayProcess, token: str, expected: list[str]):
    with sync_client(gateway, token) as client:
        models = list(client.models.list())
    assert sorted(m.id for m in models) == expected
    assert all(m.object == "model" for m in models)


def test_the_model_list_needs_a_valid_key(gateway: GatewayProcess):
    with sync_client(gateway, "tg-not-a-key") as client:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
