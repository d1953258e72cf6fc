"""The alert evaluator: one pass (`evaluate(snapshot, now)`) reads what is new in the usage
ledger, looks for spend spikes, checks every budget's thresholds and forecast, and hands the
resulting alerts to the Dispatcher. The gateway runs a pass every
`alerts.evaluationIntervalSeconds` in a background task (gateway/observability.py); tests call
`evaluate` with a clock of their own.

Leader-free: every replica (and every worker process) evaluates, and fire-once markers in the
shared store decide which one sends each alert:

    budget:<scope>:<period>:<pct>     a budget threshold, once per period
    forecast:<scope>:<period>         a forecast exhaustion, once per period
    anomaly:<scope>                   a spend spike; lapses after `alerts.cooldownSeconds`

The process that sent a spike's `firing` alert also sends its `resolved` one.

Ledger reading is incremental: the first pass loads `anomaly.historyWeeks` weeks, each later
pass what was written since the previous one (re-reading two minutes back, deduplicated by
request id, for records other replicas wrote a little late). Records written back much later
(after a long store outage) are not seen by the spike detector; budgets always are (they come
from the store's own figures).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.gateway import metrics
from tollgate.gateway.alerts.dispatch import Dispatcher
from tollgate.gateway.alerts.markers import Markers
from tollgate.gateway.alerts.model import Alert, Severity
from tollgate.gateway.anomaly import (
    HOUR,
    AnomalyDetector,
    Change,
    DetectorSettings,
    Forecast,
    forecast_exhaustion,
)
from tollgate.gateway.config.models import AnomalySettings
from tollgate.gateway.money import format_usd, parse_usd
from tollgate.gateway.pipeline.govern import checks_for
from tollgate.gateway.runtime import Snapshot
from tollgate.gateway.store.base import BudgetCheck, BudgetFigures, Store, StoreUnavailable

__all__ = ["Evaluator", "detector_settings"]

log = logging.getLogger("tollgate.alerts")

_OVERLAP = 30.0  # seconds of ledger re-read each pass (late writers), deduplicated
_SPEND_BATCH = 200  # budgets per store.spend() call
_TOTAL_MARKER_TTL = 400 * 86_400


def detector_settings(config: AnomalySettings) -> DetectorSettings:
    return DetectorSettings(
        window_seconds=config.window_minutes * 60,
        history_weeks=config.history_weeks,
        ratio=config.ratio,
        min_rate_micros_per_hour=parse_usd(config.min_usd_per_hour),
    )


@dataclass(frozen=True, slots=True)
class _Budget:
    check: BudgetCheck
    thresholds: tuple[int, ...]
    key_id: str | None
    customer_id: str | None


def _usd(micros: float) -> str:
    return format_usd(max(0, int(round(micros))))


def _who(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"virtual key '{name}'" if kind == "key" else f"customer '{name}'"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Evaluator:
    def __init__(self, dispatcher: Dispatcher, *, markers: Markers | None = None) -> None:
        self.dispatcher = dispatcher
        self.markers = markers or Markers()
        self.detector: AnomalyDetector | None = None
        self._store: Store | None = None
        self._cursor: datetime | None = None
        self._seen: dict[str, float] = {}
        self._owned: set[str] = set()
        self._scopes: frozenset[str] = frozenset()

    # --- one pass ---------------------------------------------------------------------------

    async def evaluate(self, snapshot: Snapshot, now: datetime) -> list[Alert]:
        """One evaluation at `now`; returns the alerts raised (already submitted)."""
        config = snapshot.config.alerts
        self._reset_if_changed(snapshot)
        alerts: list[Alert] = []
        if self.detector is not None:
            await self._catch_up(snapshot.store, now)
            alerts += await self._spikes(snapshot, now)
        alerts += await self._budgets(snapshot, now, config.budget_thresholds_percent)
        for alert in alerts:
            metrics.ALERTS.labels(alert.kind, alert.status).inc()
            log.warning(alert.summary, extra={"event": "alert", **alert.document()})
            self.dispatcher.submit(alert)
        return alerts

    def _reset_if_changed(self, snapshot: Snapshot) -> None:
        anomaly = snapshot.config.alerts.anomaly
        wanted = detector_settings(anomaly) if anomaly.enabled else None
        current = self.detector.settings if self.detector is not None else None
        if snapshot.store is self._store and wanted == current:
            scopes = _scopes(snapshot)
            if scopes != self._scopes and self.detector is not None:
                self.detector.forget(scopes)
            self._scopes = scopes
            return
        self._store = snapshot.store
        self.detector = AnomalyDetector(wanted) if wanted is not None else None
        self._cursor = None
        self._seen.clear()
        self._owned.clear()
        self._scopes = _scopes(snapshot)
        self.markers.forget()

    async def _catch_up(self, store: Store, now: datetime) -> None:
        detector = self.detector
        assert detector is not None
        if self._cursor is None:
            since = now - timedelta(weeks=detector.settings.history_weeks, hours=2)
        else:
            since = min(self._cursor, now) - timedelta(seconds=_OVERLAP)
        keep_from = now.timestamp() - 2 * _OVERLAP
        seen = self._seen
        scopes = self._scopes
        read = 0
        async for record in store.ledger(since, now):
            read += 1
            if read % 500 == 0:
                await asyncio.sleep(0)  # a long history load yields to request handling
            at = record.time.timestamp()
            if record.request_id in seen:
                continue
            if at >= keep_from:
                seen[record.request_id] = at
            if record.cost_micros <= 0:
                continue
            key_scope = f"key:{record.key_id}"
            if key_scope in scopes:
                detector.add(key_scope, at, record.cost_micros)
            if record.customer_id and f"customer:{record.customer_id}" in scopes:
                detector.add(f"customer:{record.customer_id}", at, record.cost_micros)
        self._seen = {rid: at for rid, at in seen.items() if at >= keep_from}
        self._cursor = now

    # --- spend spikes -----------------------------------------------------------------------

    async def _spikes(self, snapshot: Snapshot, now: datetime) -> list[Alert]:
        detector = self.detector
        assert detector is not None
        config = snapshot.config.alerts
        ttl = max(config.cooldown_seconds, 300)
        alerts: list[Alert] = []
        changes = detector.evaluate(now.timestamp(), [s for s in detector.series
                                                      if s in self._scopes])
        for change in changes:
            kind, _, name = change.scope.partition(":")
            metrics.SPEND_ANOMALY.labels(kind, name).set(1 if change.status == "firing" else 0)
            if change.status == "firing":
                try:
                    claimed = await self.markers.claim(
                        snapshot.store, f"anomaly:{change.scope}", now, ttl)
                except StoreUnavailable:
                    claimed = False
                if claimed:
                    self._owned.add(change.scope)
                    alerts.append(self._spike_alert(change, snapshot, now))
            elif change.scope in self._owned:
                self._owned.discard(change.scope)
                alerts.append(self._spike_alert(change, snapshot, now))
        return alerts

    def _spike_alert(self, change: Change, snapshot: Snapshot, now: datetime) -> Alert:
        detector = self.detector
        assert detector is not None
        window = detector.settings.window_seconds // 60
        found = change.assessment
        normal = found.baseline.level if found.baseline is not None else 0.0
        who = _who(change.scope)
        details: dict[str, Any] = {
            "rateUSDPerHour": _usd(found.rate),
            "normalUSDPerHour": _usd(normal),
            "thresholdUSDPerHour": _usd(found.threshold or 0.0),
            "windowMinutes": window,
            "requestsInWindow": found.requests,
            "baseline": found.baseline.kind if found.baseline is not None else None,
            "since": _iso(datetime.fromtimestamp(change.since_s, UTC)),
        }
        if change.status == "firing":
            summary = (f"Spend spike on {who}: ${_usd(found.rate)}/h over the last {window} "
                       f"min, against a normal ${_usd(normal)}/h for this hour of the week")
            severity: Severity = "critical"
        else:
            summary = f"Spend on {who} is back to normal (${_usd(found.rate)}/h)"
            severity = "info"
        key_id, customer_id = _ids(change.scope, snapshot)
        return Alert("spend_anomaly", change.status, f"tollgate/spend_anomaly/{change.scope}",
                     severity, summary, change.scope, now, key_id, customer_id, None, details)

    # --- budgets: thresholds and forecasts --------------------------------------------------

    async def _budgets(self, snapshot: Snapshot, now: datetime,
                       defaults: tuple[int, ...]) -> list[Alert]:
        budgets = _budgets_of(snapshot, now, defaults)
        alerts: list[Alert] = []
        for start in range(0, len(budgets), _SPEND_BATCH):
            batch = budgets[start:start + _SPEND_BATCH]
            try:
                figures = await snapshot.store.spend(tuple(b.check for b in batch), now=now)
                for budget, found in zip(batch, figures, strict=True):
                    _set_gauges(found)
                    alerts += await self._thresholds(snapshot, budget, found, now)
                    alerts += await self._forecast(snapshot, budget, found, now)
            except StoreUnavailable:
                log.info("store unavailable; budget alerts skipped this pass",
                         extra={"event": "alerts_store_unavailable"})
                break
        return alerts

    async def _thresholds(self, snapshot: Snapshot, budget: _Budget, found: BudgetFigures,
                          now: datetime) -> list[Alert]:
        limit = found.limit_micros
        if limit <= 0 or not budget.thresholds:
            return []
        check = budget.check
        crossed = sorted(p for p in budget.thresholds if found.spent_micros * 100 >= p * limit)
        claimed: list[int] = []
        for pct in crossed:
            name = f"budget:{check.scope}:{check.period_id}:{pct}"
            if self.markers.known(name, now):
                continue
            if await self.markers.claim(snapshot.store, name, now, _marker_ttl(check, now)):
                claimed.append(pct)
        if not claimed:
            return []
        pct = claimed[-1]
        severity: Severity = "critical" if pct >= 100 else "warning" if pct >= 80 else "info"
        used = found.spent_micros * 100 / limit
        summary = (f"{_who(check.scope).capitalize()} has spent {used:.0f}% of its budget "
                   f"(${format_usd(found.spent_micros)} of ${format_usd(limit)}, period "
                   f"{check.period_id}), crossing {pct}%")
        details = {
            "thresholdPercent": pct,
            "spentUSD": format_usd(found.spent_micros),
            "heldUSD": format_usd(found.reserved_micros),
            "limitUSD": format_usd(limit),
            "remainingUSD": format_usd(found.remaining_micros),
            "periodEnd": _iso(check.period_end) if check.period_end else None,
        }
        return [Alert("budget_threshold", "firing",
                      f"tollgate/budget/{check.scope}/{check.period_id}/{pct}", severity,
                      summary, check.scope, now, budget.key_id, budget.customer_id,
                      check.period_id, details)]

    async def _forecast(self, snapshot: Snapshot, budget: _Budget, found: BudgetFigures,
                        now: datetime) -> list[Alert]:
        forecast = self.forecast(budget.check, found, now)
        if forecast is None or not forecast.flagged or forecast.exhausts_at is None:
            return []
        check = budget.check
        name = f"forecast:{check.scope}:{check.period_id}"
        if self.markers.known(name, now):
            return []
        if not await self.markers.claim(snapshot.store, name, now, _marker_ttl(check, now)):
            return []
        rate = forecast.rate_micros_per_hour
        end = f", before its period ends ({_iso(check.period_end)})" if check.period_end else ""
        summary = (f"{_who(check.scope).capitalize()} will run out of budget around "
                   f"{_iso(forecast.exhausts_at)}{end}, spending ${_usd(rate)}/h")
        details = {
            "exhaustsAt": _iso(forecast.exhausts_at),
            "periodEnd": _iso(check.period_end) if check.period_end else None,
            "rateUSDPerHour": _usd(rate),
            "spentUSD": format_usd(found.spent_micros),
            "limitUSD": format_usd(found.limit_micros),
            "remainingUSD": format_usd(found.remaining_micros),
        }
        return [Alert("budget_forecast", "firing",
                      f"tollgate/forecast/{check.scope}/{check.period_id}", "warning", summary,
                      check.scope, now, budget.key_id, budget.customer_id, check.period_id,
                      details)]

    def forecast(self, check: BudgetCheck, found: BudgetFigures,
                 now: datetime) -> Forecast | None:
        """When this budget runs out at the scope's recent spend rate (None: no detector)."""
        if self.detector is None:
            return None
        rate = self.detector.rate(check.scope, now.timestamp())
        return forecast_exhaustion(found.spent_micros + found.reserved_micros,
                                   found.limit_micros, rate, now, check.period_end,
                                   self.detector.settings.forecast_horizon)


def _scopes(snapshot: Snapshot) -> frozenset[str]:
    scopes: set[str] = set()
    for policy in snapshot.keys_by_hash.values():
        scopes.add(f"key:{policy.id}")
        if policy.config.customer_id:
            scopes.add(f"customer:{policy.config.customer_id}")
    return frozenset(scopes)


def _ids(scope: str, snapshot: Snapshot) -> tuple[str | None, str | None]:
    kind, _, name = scope.partition(":")
    if kind == "customer":
        return None, name
    for policy in snapshot.keys_by_hash.values():
        if policy.id == name:
            return name, policy.config.customer_id
    return name, None


def _budgets_of(snapshot: Snapshot, now: datetime,
                defaults: tuple[int, ...]) -> list[_Budget]:
    found: dict[str, _Budget] = {}
    unique = {policy.id: policy for policy in snapshot.keys_by_hash.values()}
    for key_id in sorted(unique):
        policy = unique[key_id]
        checks, _ = checks_for(policy, now)
        for check in checks:
            if check.scope in found:
                continue
            if check.scope.startswith("key:"):
                budget = policy.config.budget
                owner: tuple[str | None, str | None] = (key_id, policy.config.customer_id)
            else:
                budget = policy.customer.budget if policy.customer else None
                owner = (None, policy.config.customer_id)
            thresholds = defaults
            if budget is not None and budget.alert_thresholds_percent is not None:
                thresholds = budget.alert_thresholds_percent
            found[check.scope] = _Budget(check, tuple(thresholds), *owner)
    return list(found.values())


def _set_gauges(found: BudgetFigures) -> None:
    kind, _, name = found.scope.partition(":")
    if kind == "key":
        metrics.BUDGET_LIMIT_MICROS.labels(name).set(found.limit_micros)
        metrics.BUDGET_REMAINING_MICROS.labels(name).set(found.remaining_micros)
    else:
        metrics.CUSTOMER_BUDGET_LIMIT_MICROS.labels(name).set(found.limit_micros)
        metrics.CUSTOMER_BUDGET_REMAINING_MICROS.labels(name).set(found.remaining_micros)


def _marker_ttl(check: BudgetCheck, now: datetime) -> int:
    if check.period_end is None:
        return _TOTAL_MARKER_TTL
    return max(HOUR, int((check.period_end - now).total_seconds()) + 86_400)

