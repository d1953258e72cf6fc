"""The `observability` and `alerts` config sections, and the /metrics exposition's handling of
the info-style config-revision gauge."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from tests.support.config import config_doc, key_entry
from tollgate.gateway import exposition
from tollgate.gateway.config.models import GatewayConfig


def _load(**sections: Any) -> GatewayConfig:
    return GatewayConfig.model_validate(config_doc(providers=[], keys=[], **sections))


def test_defaults_are_tracing_off_and_alerts_at_50_80_100_percent():
    config = _load()
    assert config.observability.tracing is None
    assert config.alerts.budget_thresholds_percent == (50, 80, 100)
    assert config.alerts.webhooks == ()
    assert config.alerts.anomaly.enabled is True


@pytest.mark.parametrize("webhook, message", [
    ({"name": "s", "type": "slack"}, "`urlFrom` is required for type 'slack'"),
    ({"name": "p", "type": "pagerduty"}, "`routingKeyFrom` is required for type 'pagerduty'"),
    ({"name": "j", "type": "json", "urlFrom": {"env": "U"}, "routingKeyFrom": {"env": "K"}},
     "`routingKeyFrom` may only be set for type 'pagerduty'"),
    ({"name": "j", "type": "teams", "urlFrom": {"env": "U"}}, "json"),
], ids=["slack without url", "pagerduty without key", "json with key", "unknown type"])
def test_a_webhook_with_the_wrong_credentials_for_its_type_is_refused(
        webhook: dict[str, Any], message: str):
    with pytest.raises(ValidationError) as caught:
        _load(alerts={"webhooks": [webhook]})
    assert message in str(caught.value)


def test_a_pagerduty_webhook_needs_no_url_and_names_are_unique():
    hook = {"name": "pd", "type": "pagerduty", "routingKeyFrom": {"env": "PD_KEY"}}
    assert _load(alerts={"webhooks": [hook]}).alerts.webhooks[0].url_from is None
    with pytest.raises(ValidationError, match="distinct `name`"):
        _load(alerts={"webhooks": [hook, hook]})


@pytest.mark.parametrize("thresholds", [[0], [50, 50], [1001]])
def test_thresholds_are_distinct_percentages(thresholds: list[int]):
    with pytest.raises(ValidationError, match="distinct whole percentages"):
        _load(alerts={"budgetThresholdsPercent": thresholds})
    with pytest.raises(ValidationError, match="distinct whole percentages"):
        GatewayConfig.model_validate(config_doc(providers=[], keys=[key_entry(
            "k", "t", budget={"maxUSD": "1", "alertThresholdsPercent": thresholds})]))


def test_tracing_needs_an_endpoint_and_a_ratio_between_0_and_1():
    assert _load(observability={"tracing": {"otlpEndpoint": "http://c:4318/v1/traces"}}) \
        .observability.tracing.sample_ratio == 1.0  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        _load(observability={"tracing": {"sampleRatio": 0.5}})
    with pytest.raises(ValidationError):
        _load(observability={"tracing": {"otlpEndpoint": "http://c", "sampleRatio": 2}})


def test_log_bodies_is_off_unless_a_key_opts_in():
    config = GatewayConfig.model_validate(config_doc(providers=[], keys=[
        key_entry("quiet", "t1"), key_entry("loud", "t2", logBodies=True)]))
    assert [k.log_bodies for k in config.virtual_keys] == [False, True]


def _info_samples() -> list[tuple[dict[str, str], float]]:
    text = exposition.render().decode()
    return [(s.labels, s.value) for family in text_string_to_metric_families(text)
            if family.name == "tollgate_config_info" for s in family.samples
            if s.name == "tollgate_config_info"]


def test_only_the_revision_served_now_is_exported():
    exposition.served_revision("rev-a")
    assert _info_samples() == [({"revision": "rev-a"}, 1.0)]
    exposition.served_revision("rev-b")
    assert _info_samples() == [({"revision": "rev-b"}, 1.0)]


def test_the_live_gauges_of_a_worker_that_is_gone_stop_counting(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch):
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for name in (f"gauge_livemax_{gone.pid}.db", f"gauge_livemostrecent_{gone.pid}.db",
                 f"counter_{gone.pid}.db", "gauge_livemax_1.db"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    exposition.reap_dead_workers()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{gone.pid}.db", "gauge_livemax_1.db"]  # counters stay; pid 1 is alive
