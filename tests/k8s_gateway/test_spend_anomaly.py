"""SpendAnomaly and the budget-exhaustion forecast in what the status publisher writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.gateway.anomaly import Forecast
from tollgate.gateway.kube.figures import GATEWAY_CONDITIONS, anomaly_want, spend_status
from tollgate.gateway.kube.status import StatusPublisher
from tollgate.gateway.store.base import BudgetCheck, BudgetFigures

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
FIGURES = BudgetFigures("key:tenants.alpha", "2026-03", 100_000_000, 60_000_000, 0)
CHECK = BudgetCheck("key:tenants.alpha", "2026-03", 100_000_000,
                    period_end=datetime(2026, 4, 1, tzinfo=UTC))


def test_spend_anomaly_is_a_gateway_condition() -> None:
    assert "SpendAnomaly" in GATEWAY_CONDITIONS


def test_spend_anomaly_flags_the_key_or_its_customer() -> None:
    scopes = ("key:tenants.alpha", "customer:acme")
    assert anomaly_want(scopes, {}).status == "False"
    key = anomaly_want(scopes, {"key:tenants.alpha": object()})
    assert (key.status, key.reason) == ("True", "SpendSpike")
    assert "the key" in key.message
    customer = anomaly_want(scopes, {"customer:acme": object(), "key:other.key": object()})
    assert customer.status == "True" and "customer acme" in customer.message
    assert anomaly_want(scopes, {"key:other.key": object()}).status == "False"


def test_the_forecast_exhaustion_date_is_published_in_whole_hours() -> None:
    assert "forecastExhaustedAt" not in spend_status(FIGURES)
    spend = spend_status(FIGURES, datetime(2026, 3, 12, 7, 42, 13, tzinfo=UTC))
    assert spend["forecastExhaustedAt"] == "2026-03-12T07:00:00Z"
    assert spend["spentUSD"] == "60.00"


class _Observability:
    def __init__(self, anomalies: dict[str, Any], forecast: Forecast | None) -> None:
        self.anomalies, self.result = anomalies, forecast

    def spend_anomalies(self) -> dict[str, Any]:
        return self.anomalies

    def forecast(self, check: BudgetCheck, figures: BudgetFigures,
                 now: datetime) -> Forecast | None:
        return self.result


def _desired(observability: Any) -> Any:
    publisher = StatusPublisher(None, None, None, None, None,  # type: ignore[arg-type]
                                observability=observability)
    publisher._store_view["tenants.alpha"] = ([(CHECK, FIGURES)], [])
    publisher._now = NOW
    if observability is not None:
        publisher._anomalies = observability.spend_anomalies()
    return publisher._desire("tenants.alpha", (CHECK,), None,
                             ("key:tenants.alpha", "customer:acme"))


def test_the_publisher_wants_spend_anomaly_and_the_forecast() -> None:
    soon = NOW + timedelta(days=2, minutes=30)
    desired = _desired(_Observability({"customer:acme": object()},
                                      Forecast(1e6, soon, exhausted=False, flagged=True)))
    wants = dict(desired.wants)
    assert wants["SpendAnomaly"].status == "True"
    assert desired.spend["forecastExhaustedAt"] == "2026-03-12T12:00:00Z"

    calm = _desired(_Observability({}, Forecast(1e3, NOW + timedelta(days=90),
                                                exhausted=False, flagged=False)))
    assert dict(calm.wants)["SpendAnomaly"].status == "False"
    assert "forecastExhaustedAt" not in calm.spend


def test_without_observability_neither_is_published() -> None:
    desired = _desired(None)
    assert "SpendAnomaly" not in dict(desired.wants)
    assert "forecastExhaustedAt" not in desired.spend
