"""set_condition(): merge by type; lastTransitionTime moves only on a status flip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.operator.objects import provider_credential, secret, virtual_key
from tollgate.operator.conditions import (
    MESSAGE_MAX,
    get_condition,
    initial_conditions,
    ready_condition,
    set_condition,
)
from tollgate.operator.render import RenderOptions, render
from tollgate.operator.validate import ObjectRef

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_a_new_condition_is_appended_with_the_time_and_generation() -> None:
    conditions = set_condition(None, "Ready", "True", "Accepted", "Served.", 3, T0)
    assert conditions == [{"type": "Ready", "status": "True", "observedGeneration": 3,
                           "lastTransitionTime": "2026-11-27T12:00:00Z", "reason": "Accepted",
                           "message": "Served."}]


def test_the_transition_time_stays_when_only_the_reason_changes() -> None:
    before = set_condition(None, "Ready", "False", "SecretNotFound", "a", 1, T0)
    after = set_condition(before, "Ready", "False", "ProviderCredentialNotFound", "b", 2, T1)
    assert after[0]["lastTransitionTime"] == "2026-11-27T12:00:00Z"
    assert (after[0]["reason"], after[0]["message"], after[0]["observedGeneration"]) == (
        "ProviderCredentialNotFound", "b", 2)


def test_the_transition_time_moves_when_the_status_flips() -> None:
    before = set_condition(None, "Ready", "False", "SecretNotFound", "a", 1, T0)
    after = set_condition(before, "Ready", "True", "Accepted", "ok", 1, T1)
    assert after[0]["lastTransitionTime"] == "2026-11-27T12:05:00Z"


def test_other_conditions_and_their_order_are_kept() -> None:
    conditions = initial_conditions(None, "VirtualKey", 1, T0)
    updated = set_condition(conditions, "RateLimited", "True", "RequestsPerMinute", "x", 1, T1)
    assert [c["type"] for c in updated] == ["Ready", "BudgetExceeded", "RateLimited",
                                            "Degraded", "SpendAnomaly"]
    assert [c for c in updated if c["type"] != "RateLimited"] == [
        c for c in conditions if c["type"] != "RateLimited"]


def test_recomputing_the_same_state_changes_nothing() -> None:
    """So a handler can compare and skip the status patch."""
    once = set_condition(None, "Ready", "True", "Accepted", "Served.", 1, T0)
    assert set_condition(once, "Ready", "True", "Accepted", "Served.", 1, T1) == once
    assert initial_conditions(once, "ProviderCredential", 1, T1) == once


def test_every_known_condition_starts_unknown() -> None:
    conditions = initial_conditions([], "ProviderCredential", 4, T0)
    assert conditions == [{"type": "Ready", "status": "Unknown", "observedGeneration": 4,
                           "lastTransitionTime": "2026-11-27T12:00:00Z", "reason": "Reconciling",
                           "message": "The operator has not evaluated this condition yet."}]


def test_bad_status_values_and_long_messages() -> None:
    with pytest.raises(ValueError, match="condition status"):
        set_condition(None, "Ready", "true", "Accepted", "", 1, T0)
    [condition] = set_condition(None, "Ready", "False", "X", "m" * (MESSAGE_MAX + 10), 1, T0)
    assert len(condition["message"]) == MESSAGE_MAX


def test_get_condition_finds_by_type() -> None:
    conditions = initial_conditions(None, "VirtualKey", 1, T0)
    found = get_condition(conditions, "Degraded")
    assert found is not None and found["status"] == "Unknown"
    assert get_condition(conditions, "Nope") is None


def test_ready_follows_the_render_report() -> None:
    credentials = [provider_credential("openai")]
    secrets = [secret("openai-api-key", apiKey="sk")]
    keys = [virtual_key("good"),
            virtual_key("narrowed", fallbacks=[{"provider": "gone", "model": "m"}]),
            virtual_key("left-out", budget={"maxUSD": "x"}),
            virtual_key("pending", generated=True)]
    rendered = render(keys, credentials, secrets, RenderOptions())
    report = rendered.reports

    def ready(name: str) -> tuple[str, str, str]:
        update = ready_condition(report[ObjectRef("VirtualKey", "tenants", name)], "r1")
        return update.status, update.reason, update.message

    assert ready("good") == ("True", "Accepted", "Served in config revision r1.")
    status, reason, message = ready("narrowed")
    assert (status, reason) == ("False", "ProviderCredentialNotFound")
    assert message.startswith("Served in config revision r1, narrower than declared: "
                              'spec.fallbacks[0].provider: Not found: "gone"')
    status, reason, message = ready("left-out")
    assert (status, reason) == ("False", "InvalidSpec") and message.startswith("Not served: ")
    assert ready("pending")[:2] == ("False", "TokenPending")
