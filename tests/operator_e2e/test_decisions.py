"""The pure decisions inside the render loop, table by table: what to do with a token Secret,
which status to write, when a config object needs writing. (The end-to-end tests show them
working together; these pin the edge cases that are slow to reach through the API.)"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.operator.objects import virtual_key
from tollgate.operator import kube, tokens
from tollgate.operator.reconcile import Inputs, desired_status, index_resource, index_secret
from tollgate.operator.render import Report
from tollgate.operator.validate import ObjectRef, Problem, Reason, not_found

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
OWNER = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "VirtualKey", "name": "k",
         "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}


def _key(annotation: str | None = None, **spec: Any) -> dict[str, Any]:
    body = virtual_key("k", generated=True, **spec)
    body["metadata"]["uid"] = "uid-1"
    if annotation is not None:
        body["metadata"]["annotations"] = {tokens.ROTATE_ANNOTATION: annotation}
    return body


def _secret(token: str = "tg-one", previous: str | None = None, rotated_for: str = "",
            rotated_at: datetime = NOW, owned: bool = True) -> dict[str, Any]:
    data = {"token": base64.b64encode(token.encode()).decode()}
    if previous:
        data["previousToken"] = base64.b64encode(previous.encode()).decode()
    return {"metadata": {"name": "tollgate-vk-k", "namespace": "tenants",
                         "resourceVersion": "7",
                         "ownerReferences": [OWNER] if owned else [],
                         "annotations": {tokens.ROTATED_FOR_ANNOTATION: rotated_for,
                                         tokens.ROTATED_AT_ANNOTATION: "2026-11-27T12:00:00Z"
                                         if rotated_at == NOW else
                                         rotated_at.strftime("%Y-%m-%dT%H:%M:%SZ")}},
            "data": data}


def _plan(key: dict[str, Any], secret: dict[str, Any] | None,
          now: datetime = NOW) -> tokens.TokenAction | None:
    return tokens.plan(key, secret, OWNER, now, HOUR, generate=lambda: "tg-new")


def test_a_key_without_a_token_gets_an_owned_secret() -> None:
    action = _plan(_key("r0"), None)
    assert isinstance(action, tokens.CreateSecret)
    body = action.body
    assert body["metadata"]["name"] == "tollgate-vk-k"
    assert body["metadata"]["ownerReferences"] == [OWNER]
    assert base64.b64decode(body["data"]["token"]) == b"tg-new"
    # Created under an existing annotation: that request counts as honoured.
    assert body["metadata"]["annotations"][tokens.ROTATED_FOR_ANNOTATION] == "r0"


@pytest.mark.parametrize("spec", [{"tokenSHA256": "a" * 64},
                                  {"tokenSecretRef": {"name": "mine", "key": "token"}}],
                         ids=["hash", "own-secret"])
def test_a_key_bringing_its_own_token_gets_nothing(spec: dict[str, Any]) -> None:
    key = virtual_key("k", **spec)
    assert _plan(key, None) is None


def test_a_new_annotation_value_rotates_once_keeping_the_old_token() -> None:
    action = _plan(_key("r1"), _secret(rotated_for="r0"))
    assert isinstance(action, tokens.RotateSecret)
    assert action.patch["metadata"]["resourceVersion"] == "7"  # no double rotation on a race
    assert base64.b64decode(action.patch["data"]["token"]) == b"tg-new"
    assert base64.b64decode(action.patch["data"]["previousToken"]) == b"tg-one"
    assert _plan(_key("r1"), _secret(rotated_for="r1")) is None


def test_the_previous_token_goes_when_the_overlap_ends() -> None:
    secret = _secret(previous="tg-old", rotated_for="r1")
    assert _plan(_key("r1"), secret, now=NOW + HOUR - timedelta(seconds=1)) is None
    action = _plan(_key("r1"), secret, now=NOW + HOUR)
    assert isinstance(action, tokens.DropPrevious)
    assert action.patch["data"] == {"previousToken": None}
    assert tokens.previous_token_expiry(secret, HOUR) == NOW + HOUR


def test_a_secret_someone_else_owns_is_never_rotated() -> None:
    assert _plan(_key("r9"), _secret(owned=False)) is None


def test_a_key_being_deleted_gets_nothing() -> None:
    key = _key()
    key["metadata"]["deletionTimestamp"] = "2026-11-27T12:00:00Z"
    assert _plan(key, None) is None


def _vk_body(generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body = virtual_key("k", generation=generation)
    body["metadata"]["resourceVersion"] = "3"
    body["status"] = status or {}
    return body


REF = ObjectRef("VirtualKey", "tenants", "k")
SERVED = Report(REF, "tenants.k")
BROKEN = Report(REF, None, (Problem(REF, not_found("spec.allowedProviders[0]", "x"),
                                   Reason.PROVIDER_CREDENTIAL_NOT_FOUND),))


def test_the_first_status_writes_every_condition_and_announces_ready() -> None:
    patch, announce = desired_status("VirtualKey", _vk_body(), SERVED, "rev1", NOW)
    assert patch is not None and announce is not None
    assert patch["observedGeneration"] == 1 and patch["configRevision"] == "rev1"
    assert patch["keyId"] == "tenants.k"
    assert [c["type"] for c in patch["conditions"]] == [
        "Ready", "BudgetExceeded", "RateLimited", "Degraded", "SpendAnomaly"]
    assert announce.status == "True" and announce.reason == "Accepted"


def test_an_up_to_date_status_writes_nothing_even_when_the_revision_moves() -> None:
    patch, _ = desired_status("VirtualKey", _vk_body(), SERVED, "rev1", NOW)
    assert patch is not None
    current = _vk_body(status=patch)
    assert desired_status("VirtualKey", current, SERVED, "rev2", NOW + HOUR) == (None, None)


def test_a_broken_reference_flips_ready_and_keeps_the_other_conditions() -> None:
    patch, _ = desired_status("VirtualKey", _vk_body(), SERVED, "rev1", NOW)
    assert patch is not None
    patch["conditions"][1] = {**patch["conditions"][1], "status": "True",
                              "reason": "OverBudget"}  # written by the gateway meanwhile
    again, announce = desired_status("VirtualKey", _vk_body(status=patch), BROKEN, "rev2",
                                     NOW + HOUR)
    assert again is not None and announce is not None
    ready = next(c for c in again["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ProviderCredentialNotFound")
    assert ready["lastTransitionTime"] == "2026-11-27T13:00:00Z"
    assert again["conditions"][1]["reason"] == "OverBudget"
    assert again["configRevision"] is None  # not served: no revision holds this generation


def test_the_render_input_digest_ignores_status_and_versions() -> None:
    body = _vk_body()
    other = _vk_body(generation=2, status={"keyId": "x"})
    other["metadata"]["resourceVersion"] = "99"
    secret = index_secret({"metadata": {"name": "s", "namespace": "tenants"},
                           "data": {"a": "b"}})
    first = Inputs([index_resource(body)], [], [secret]).digest()
    assert Inputs([index_resource(other)], [], [secret]).digest() == first
    changed = index_resource({**body, "spec": {**body["spec"], "enabled": False}})
    assert Inputs([changed], [], [secret]).digest() != first


@pytest.mark.parametrize(("current", "needed"), [
    (None, True),
    ({"data": {"a": "1"}, "metadata": {"labels": {"l": "1", "extra": "x"}}}, False),
    ({"data": {"a": "2"}, "metadata": {"labels": {"l": "1"}}}, True),
    ({"data": {"a": "1"}, "metadata": {"labels": {}}}, True),
], ids=["missing", "same-plus-foreign-label", "data-changed", "label-missing"])
def test_a_config_object_is_written_only_when_it_differs(
        current: dict[str, Any] | None, needed: bool) -> None:
    desired = {"data": {"a": "1"}, "metadata": {"labels": {"l": "1"}}}
    assert kube.needs_write(desired, current) is needed
