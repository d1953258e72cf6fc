"""Stage 2 — authorize: the requested model becomes the ordered route this key may use.

Resolution, first match wins: an alias, then `provider/model`, then the providers serving the
model. The key's fallback chain follows only when the requested model is in it (chat only);
duplicates are dropped and providers the key may not use are filtered out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.config import config_doc, key_entry, sha256
from tollgate.gateway.errors import ModelNotFound, PermissionDenied
from tollgate.gateway.pipeline.authorize import authorize, models_for_key
from tollgate.gateway.pipeline.call import Call, Endpoint
from tollgate.gateway.runtime import Snapshot

PROVIDERS = [
    {"name": "primary", "type": "mock", "models": ["gpt-4o", "twin-model", "shared-model"]},
    {"name": "backup", "type": "mock", "models": ["claude-sonnet", "twin-model", "shared-model"]},
    {"name": "local", "type": "mock"},  # no list: serves the catalog's mock models
]
ALIASES = [
    {"name": "default-chat", "targets": [{"provider": "primary", "model": "gpt-4o"},
                                         {"provider": "backup", "model": "claude-sonnet"}]},
    {"name": "shared-model", "targets": [{"provider": "backup", "model": "shared-model"}]},
    {"name": "local/fast", "targets": [{"provider": "primary", "model": "gpt-4o"}]},
    {"name": "twice", "targets": [{"provider": "primary", "model": "gpt-4o"},
                                  {"provider": "primary", "model": "gpt-4o"}]},
]
CHAIN = [
    {"provider": "primary", "model": "gpt-4o"},
    {"provider": "backup", "model": "claude-sonnet"},
    {"provider": "backup", "model": "private-model"},
    {"provider": "local", "model": "mock-chat"},
]
KEYS = [
    key_entry("open", "tg-open"),
    key_entry("chained", "tg-chained", fallbacks=CHAIN),
    key_entry("primary-only", "tg-primary-only", allowedProviders=["primary"]),
    key_entry("chat-only", "tg-chat-only", allowedModels=["default-chat", "mystery"]),
]


@pytest.fixture
def snapshot(snapshot_of: Callable[[dict[str, Any]], Snapshot]) -> Snapshot:
    return snapshot_of(config_doc(PROVIDERS, KEYS, models=ALIASES))


def route(snapshot: Snapshot, token: str, model: str, endpoint: Endpoint = "chat") -> list[str]:
    call = Call(request_id="req_test", endpoint=endpoint, snapshot=snapshot, body={},
                started=0.0, key=snapshot.keys_by_hash[sha256(token)], requested_model=model)
    authorize(call)
    return [f"{t.provider}/{t.model}" for t in call.route]


def refusal(snapshot: Snapshot, token: str, model: str) -> PermissionDenied | ModelNotFound:
    with pytest.raises((PermissionDenied, ModelNotFound)) as refused:
        route(snapshot, token, model)
    return refused.value


def test_an_alias_resolves_to_its_targets_in_declared_order(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "default-chat") == ["primary/gpt-4o", "backup/claude-sonnet"]


def test_an_alias_wins_over_providers_serving_a_model_of_the_same_name(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "shared-model") == ["backup/shared-model"]


def test_an_alias_wins_over_the_provider_slash_model_form(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "local/fast") == ["primary/gpt-4o"]


def test_provider_slash_model_names_a_configured_provider_explicitly(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "backup/gpt-4o") == ["backup/gpt-4o"]


def test_provider_slash_model_with_an_unconfigured_provider_is_just_a_model_name(
    snapshot: Snapshot,
):
    error = refusal(snapshot, "tg-open", "anthropic/claude-sonnet")
    assert isinstance(error, ModelNotFound)


def test_a_served_model_routes_to_every_provider_serving_it_in_config_order(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "twin-model") == ["primary/twin-model", "backup/twin-model"]


def test_a_provider_without_a_model_list_serves_its_catalog_models(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "mock-chat") == ["local/mock-chat"]


def test_a_model_in_the_keys_chain_is_followed_by_the_rest_of_the_chain(snapshot: Snapshot):
    assert route(snapshot, "tg-chained", "gpt-4o") == [
        "primary/gpt-4o", "backup/claude-sonnet", "backup/private-model", "local/mock-chat",
    ]


def test_a_model_from_the_middle_of_the_chain_is_tried_first_then_the_others_in_order(
    snapshot: Snapshot,
):
    assert route(snapshot, "tg-chained", "claude-sonnet") == [
        "backup/claude-sonnet", "primary/gpt-4o", "backup/private-model", "local/mock-chat",
    ]


def test_a_model_reachable_only_through_the_keys_chain_is_still_tried_first(snapshot: Snapshot):
    """No provider lists `private-model`; the chain names it, so the caller asked for exactly
    that target, and the chain's other entries are its fallbacks, not its replacements."""
    assert route(snapshot, "tg-chained", "private-model") == [
        "backup/private-model", "primary/gpt-4o", "backup/claude-sonnet", "local/mock-chat",
    ]


def test_the_chain_is_not_appended_when_the_requested_model_is_not_in_it(snapshot: Snapshot):
    assert route(snapshot, "tg-chained", "default-chat") == [
        "primary/gpt-4o", "backup/claude-sonnet",
    ]
    assert route(snapshot, "tg-chained", "twin-model") == [
        "primary/twin-model", "backup/twin-model",
    ]


def test_a_key_without_a_chain_gets_only_the_resolved_targets(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "gpt-4o") == ["primary/gpt-4o"]


def test_the_chain_is_not_appended_for_embeddings(snapshot: Snapshot):
    assert route(snapshot, "tg-chained", "gpt-4o", endpoint="embeddings") == ["primary/gpt-4o"]


def test_a_chat_only_chain_model_is_not_found_for_embeddings(snapshot: Snapshot):
    with pytest.raises(ModelNotFound):
        route(snapshot, "tg-chained", "private-model", endpoint="embeddings")


def test_a_target_listed_twice_is_tried_once(snapshot: Snapshot):
    assert route(snapshot, "tg-open", "twice") == ["primary/gpt-4o"]


def test_targets_on_providers_the_key_may_not_use_are_dropped(snapshot: Snapshot):
    assert route(snapshot, "tg-primary-only", "default-chat") == ["primary/gpt-4o"]
    assert route(snapshot, "tg-primary-only", "twin-model") == ["primary/twin-model"]


def test_a_model_only_on_providers_the_key_may_not_use_is_403_provider_not_allowed(
    snapshot: Snapshot,
):
    error = refusal(snapshot, "tg-primary-only", "claude-sonnet")
    assert isinstance(error, PermissionDenied)
    assert (error.status, error.code, error.param) == (403, "provider_not_allowed", "model")


def test_provider_slash_model_cannot_bypass_allowed_providers(snapshot: Snapshot):
    error = refusal(snapshot, "tg-primary-only", "backup/gpt-4o")
    assert (error.status, error.code) == (403, "provider_not_allowed")


def test_a_model_outside_the_keys_allowed_models_is_403_model_not_allowed(snapshot: Snapshot):
    error = refusal(snapshot, "tg-chat-only", "gpt-4o")
    assert isinstance(error, PermissionDenied)
    assert (error.status, error.code, error.param) == (403, "model_not_allowed", "model")
    assert route(snapshot, "tg-chat-only", "default-chat") == [
        "primary/gpt-4o", "backup/claude-sonnet",
    ]


def test_an_unknown_model_is_404_model_not_found(snapshot: Snapshot):
    error = refusal(snapshot, "tg-open", "gpt-7")
    assert isinstance(error, ModelNotFound)
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


def test_an_allowed_model_that_nothing_serves_is_404(snapshot: Snapshot):
    error = refusal(snapshot, "tg-chat-only", "mystery")
    assert (error.status, error.code) == (404, "model_not_found")


def test_a_key_lists_only_the_models_it_may_call(snapshot: Snapshot):
    def listed(token: str) -> list[str]:
        key = snapshot.keys_by_hash[sha256(token)]
        return [name for name, _ in models_for_key(snapshot, key)]

    assert listed("tg-chat-only") == ["default-chat"]
    assert "claude-sonnet" not in listed("tg-primary-only")
    assert "gpt-4o" in listed("tg-primary-only")
    assert "private-model" in listed("tg-chained")
    assert "private-model" not in listed("tg-open")
