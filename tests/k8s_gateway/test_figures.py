"""The pure parts of the gateway's Kubernetes features: key ids → VirtualKeys, condition
merging, the figures behind each condition, revision order, and assembling ConfigMap parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.k8s_gateway.support import gateway_config, key_entry
from tollgate.gateway.config.loader import ConfigError
from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.kube.configmaps import Incomplete, _parts, assemble
from tollgate.gateway.kube.figures import (
    Want,
    budget_want,
    degraded_want,
    in_force,
    merge_conditions,
    rate_want,
    set_condition,
    spend_status,
    split_key_id,
)
from tollgate.gateway.kube.revisions import RevisionLog
from tollgate.gateway.kube.roster import Replica
from tollgate.gateway.store.base import BudgetCheck, BudgetFigures, RateCheck, rate_figures
from tollgate.operator.render import config_maps, gateway_name

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
READY = {"type": "Ready", "status": "True", "observedGeneration": 3,
         "lastTransitionTime": "2026-11-01T00:00:00Z", "reason": "Accepted", "message": "ok"}


@pytest.mark.parametrize("namespace,name", [("tenants", "acme-prod"), ("t", "a.b.c"),
                                            ("team-b", "x" * 40)])
def test_a_key_id_maps_back_to_the_virtualkey_the_operator_named_it_after(
        namespace: str, name: str) -> None:
    assert split_key_id(gateway_name(namespace, name)) == (namespace, name)


@pytest.mark.parametrize("key_id", ["standalone-key", "tenants.", ".name", "Tenants.Acme",
                                    "a" * 30 + "." + "b" * 33])
def test_ids_the_operator_did_not_render_as_namespace_dot_name_map_to_nothing(
        key_id: str) -> None:
    assert split_key_id(key_id) is None


def test_set_condition_moves_the_transition_time_only_on_a_flip() -> None:
    conditions = [READY]
    first = set_condition(conditions, "Degraded", Want("False", "Serving", "fine"), 3, NOW)
    assert first[0] == READY and first[1]["lastTransitionTime"] == "2026-11-27T10:00:00Z"
    reworded = set_condition(first, "Degraded", Want("False", "Serving", "still fine"), 4, LATER)
    assert reworded[1]["lastTransitionTime"] == "2026-11-27T10:00:00Z"
    assert (reworded[1]["message"], reworded[1]["observedGeneration"]) == ("still fine", 4)
    flipped = set_condition(reworded, "Degraded", Want("True", "FallbackChainFailing", "x"), 4,
                            LATER)
    assert flipped[1]["lastTransitionTime"] == "2026-11-27T10:05:00Z"
    assert flipped[0] == READY  # the operator's condition, untouched, in its place


def test_merge_conditions_keeps_order_and_foreign_types() -> None:
    foreign = {"type": "SpendAnomaly", "status": "Unknown", "reason": "Reconciling",
               "message": "", "lastTransitionTime": "2026-11-01T00:00:00Z"}
    merged = merge_conditions([READY, foreign], {"BudgetExceeded": Want("False", "NoBudget", "")},
                              3, NOW)
    assert [c["type"] for c in merged] == ["Ready", "SpendAnomaly", "BudgetExceeded"]
    assert merged[:2] == [READY, foreign]


def _budget(scope: str, limit: int, spent: int, reserved: int = 0
            ) -> tuple[BudgetCheck, BudgetFigures]:
    check = BudgetCheck(scope, "2026-11", limit, datetime(2026, 12, 1, tzinfo=UTC))
    return check, BudgetFigures(scope, "2026-11", limit, spent, reserved)


def test_spend_is_published_as_decimal_strings() -> None:
    _, figures = _budget("key:tenants.a", 12_000_000_000, 8_123_410_000, 20_000)
    assert spend_status(figures) == {"period": "2026-11", "spentUSD": "8123.41",
                                     "remainingUSD": "3876.57", "reservedUSD": "0.02"}


def test_budget_exceeded_follows_the_settled_spend_of_any_budget_that_applies() -> None:
    assert budget_want([]).reason == "NoBudget"
    within = budget_want([_budget("key:k", 1_000_000, 999_999, reserved=1)])
    assert (within.status, within.reason) == ("False", "WithinBudget")
    spent = budget_want([_budget("key:k", 1_000_000, 10),
                         _budget("customer:acme", 5_000_000, 5_000_000)])
    assert (spent.status, spent.reason) == ("True", "BudgetSpent")
    assert spent.message.startswith("Customer acme's budget of 5.00 USD for period 2026-11")
    assert "2026-12-01T00:00:00Z" in spent.message


def test_rate_limited_while_a_window_is_used_up() -> None:
    check = RateCheck("key:k", requests_per_minute=10, tokens_per_minute=1000, max_concurrent=2)
    assert rate_want([]).reason == "NoRateLimit"
    assert rate_want([rate_figures(check, NOW, 9, 999, 1)]).status == "False"
    used_up = rate_want([rate_figures(check, NOW, 10, 5, 2)])
    assert (used_up.status, used_up.reason) == ("True", "RateLimitReached")
    assert "`requestsPerMinute` (10)" in used_up.message
    assert "`maxConcurrent` (2)" in used_up.message and "tokens" not in used_up.message


def test_degraded_only_when_nothing_succeeded() -> None:
    assert degraded_want(0, 0, 60).status == "False"
    assert degraded_want(3, 1, 60).status == "False"
    assert degraded_want(3, 0, 60).status == "True"


def _config(*keys: dict[str, object]) -> tuple[GatewayConfig, str]:
    document = gateway_config("http://127.0.0.1:9/v1", list(keys))
    return GatewayConfig.model_validate(document), str(document["revision"])


def test_a_replica_serves_a_key_once_its_revision_is_at_least_the_keys_change() -> None:
    log = RevisionLog()
    r1 = _config(key_entry("t.a"), key_entry("t.b"))
    r2 = _config(key_entry("t.a"), key_entry("t.b", enabled=False))
    r3 = _config(key_entry("t.a", enabled=False), key_entry("t.b", enabled=False))
    for config, revision in (r1, r2, r3):
        assert log.record(config, revision)
    assert not log.record(*r3)
    rev1, rev2, rev3 = r1[1], r2[1], r3[1]
    assert (log.since("t.a"), log.since("t.b")) == (rev3, rev2)
    assert log.unchanged_from_start("t.a") is False
    assert log.covers(rev3, "t.a") and not log.covers(rev2, "t.a")
    assert log.covers(rev2, "t.b") and log.covers(rev3, "t.b") and not log.covers(rev1, "t.b")
    # A revision this process never saw cannot be placed: it is taken as older.
    assert not log.covers("0123456789abcdef", "t.b")

    want, served = in_force("t.b", [Replica("gw-a", rev3), Replica("gw-b", rev2)], log)
    assert (want.status, want.reason, served) == ("True", "ServedEverywhere", rev2)
    want, served = in_force("t.a", [Replica("gw-a", rev3), Replica("gw-b", rev2)], log)
    assert (want.status, want.reason, served) == ("False", "RolloutInProgress", rev2)
    assert "gw-b (revision " in want.message and "gw-a" not in want.message
    assert in_force("t.a", [], log)[0].status == "Unknown"


def test_keys_unchanged_since_the_process_started_are_served_by_any_revision() -> None:
    log = RevisionLog()
    log.record(*_config(key_entry("t.a")))
    assert log.unchanged_from_start("t.a")
    assert log.covers("an-older-revision", "t.a")


def _maps(config: dict[str, object], max_bytes: int = 1024) -> list[dict[str, object]]:
    return config_maps(config, "cfg", "ns", max_bytes)


def _all_parts(maps: list[dict[str, object]]) -> list[object]:
    return [part for body in maps for part in _parts(body)]


def test_assemble_merges_a_whole_set_and_refuses_a_partial_one() -> None:
    keys = [key_entry(f"t.k{i:02d}", metadata={"pad": "p" * 100}) for i in range(12)]
    old, new = (gateway_config("http://127.0.0.1:9/v1", keys[:n]) for n in (11, 12))
    old_maps, new_maps = _maps(old), _maps(new)
    assert len(old_maps) == len(new_maps) >= 3
    config, revision = assemble(_all_parts(new_maps))
    assert revision == new["revision"] and len(config.virtual_keys) == 12
    with pytest.raises(Incomplete):
        assemble(_all_parts(new_maps[:-1]))  # a part missing
    with pytest.raises(Incomplete):
        assemble(_all_parts([*new_maps[:-1], old_maps[-1]]))  # two revisions
    # Fewer parts than before: the new set is whole while a stale part still exists.
    small = gateway_config("http://127.0.0.1:9/v1", keys[:1])
    [single] = _maps(small)
    assert assemble(_all_parts([single, *old_maps[1:]]))[1] == small["revision"]


def test_assemble_rejects_an_invalid_whole_set() -> None:
    broken = gateway_config("http://127.0.0.1:9/v1", [key_entry("t.a"), key_entry("t.a")])
    with pytest.raises(ConfigError):
        assemble(_all_parts(_maps(broken, 900 * 1024)))
    body = {"metadata": {"name": "cfg-0"}, "data": {"part-0000-of-0001.json": "{nope"}}
    with pytest.raises(ConfigError, match="not JSON"):
        _parts(body)
    assert _parts({"data": {"other.json": "{}"}}) == []
