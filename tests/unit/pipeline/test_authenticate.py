"""Stage 1 — authenticate: a bearer token (or x-api-key) becomes a virtual key, or a 401."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.config import config_doc, key_entry, sha256
from tollgate.gateway.errors import AuthenticationFailed
from tollgate.gateway.pipeline.authenticate import authenticate, token_from_headers
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.runtime import Snapshot

MOCK = {"name": "mock", "type": "mock"}


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.fixture
def snapshot(snapshot_of: Callable[[dict[str, Any]], Snapshot]) -> Snapshot:
    return snapshot_of(config_doc([MOCK], [
        key_entry("acme-prod", "tg-acme-new", previousTokenSHA256=sha256("tg-acme-old")),
        key_entry("globex", "tg-globex", enabled=False),
        key_entry("initech", "tg-initech", expiresAt=_at(timedelta(seconds=-1))),
        key_entry("hooli", "tg-hooli", expiresAt=_at(timedelta(days=1))),
    ]))


def call_with(snapshot: Snapshot, *, authorization: str | None = None,
              api_key: str | None = None) -> Call:
    return Call(request_id="req_test", endpoint="chat", snapshot=snapshot, body={}, started=0.0,
                token=token_from_headers(authorization, api_key))


def rejection(call: Call) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(call)
    return refused.value


@pytest.mark.parametrize(("authorization", "api_key"), [
    ("Bearer tg-acme-new", None),
    ("bearer tg-acme-new", None),
    ("Bearer   tg-acme-new  ", None),
    (None, "tg-acme-new"),
    ("Basic dXNlcjpwYXNz", "tg-acme-new"),
    ("Bearer ", "tg-acme-new"),
], ids=["bearer", "bearer-lowercase", "bearer-padded", "x-api-key",
        "x-api-key-beside-basic-auth", "x-api-key-beside-empty-bearer"])
def test_a_known_token_authenticates_as_its_virtual_key(
    snapshot: Snapshot, authorization: str | None, api_key: str | None
):
    call = call_with(snapshot, authorization=authorization, api_key=api_key)
    authenticate(call)
    assert call.key is not None and call.key.id == "acme-prod"


def test_the_bearer_token_is_used_when_both_headers_are_sent(snapshot: Snapshot):
    assert token_from_headers("Bearer tg-one", "tg-two") == "tg-one"


def test_the_token_is_dropped_from_the_call_once_it_is_checked(snapshot: Snapshot):
    call = call_with(snapshot, authorization="Bearer tg-acme-new")
    authenticate(call)
    assert call.token is None


def test_the_previous_token_of_a_key_being_rotated_is_still_accepted(snapshot: Snapshot):
    call = call_with(snapshot, authorization="Bearer tg-acme-old")
    authenticate(call)
    assert call.key is not None and call.key.id == "acme-prod"


@pytest.mark.parametrize(("authorization", "api_key"), [
    (None, None),
    ("Bearer ", None),
    ("Basic dXNlcjpwYXNz", None),
    (None, "   "),
], ids=["no-headers", "empty-bearer", "basic-auth-only", "blank-x-api-key"])
def test_a_request_without_a_token_gets_401(
    snapshot: Snapshot, authorization: str | None, api_key: str | None
):
    error = rejection(call_with(snapshot, authorization=authorization, api_key=api_key))
    assert (error.status, error.code) == (401, "invalid_api_key")
    assert "missing API key" in error.message


def test_an_unknown_token_gets_401_without_the_token_in_the_message(snapshot: Snapshot):
    error = rejection(call_with(snapshot, authorization="Bearer tg-not-a-key-0123456789"))
    assert (error.status, error.code) == (401, "invalid_api_key")
    assert "tg-not-a-key-0123456789" not in error.body().decode()


def test_a_disabled_key_gets_401_key_disabled(snapshot: Snapshot):
    error = rejection(call_with(snapshot, authorization="Bearer tg-globex"))
    assert (error.status, error.code) == (401, "key_disabled")
    assert "globex" in error.message and "tg-globex" not in error.body().decode()


def test_an_expired_key_gets_401_key_expired(snapshot: Snapshot):
    error = rejection(call_with(snapshot, api_key="tg-initech"))
    assert (error.status, error.code) == (401, "key_expired")


def test_a_key_expiring_in_the_future_still_works(snapshot: Snapshot):
    call = call_with(snapshot, authorization="Bearer tg-hooli")
    authenticate(call)
    assert call.key is not None and call.key.id == "hooli"


def test_a_rejection_renders_as_an_openai_shaped_error(snapshot: Snapshot):
    error = rejection(call_with(snapshot, authorization="Bearer tg-nope"))
    body = error.to_openai()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["message"]


def test_tokens_are_compared_exactly_not_case_insensitively(snapshot: Snapshot):
    error = rejection(call_with(snapshot, authorization="Bearer TG-ACME-NEW"))
    assert error.code == "invalid_api_key"
