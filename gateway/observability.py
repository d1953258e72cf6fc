"""The lifespan's observability resources: tracing, alert delivery, and the evaluator task.

One `Observability` per worker process, created by the app's lifespan and reached by handlers
through `request.scope["state"]["observability"]`:

    tracer_for(snapshot)   the request's tracer, or None when tracing is off (the common case)
    forecast(...)          budget-exhaustion forecast (/v1/key/info; a status publisher)
    spend_anomalies()      scopes in a spend spike now (a `SpendAnomaly` condition)
    add_sink(sink)         the hook for receivers other than the configured webhooks
                           (an AlertSink: Kubernetes Events, a SpendAnomaly condition …)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx

from tollgate.gateway import exposition
from tollgate.gateway.alerts.dispatch import Dispatcher
from tollgate.gateway.alerts.evaluator import Evaluator
from tollgate.gateway.alerts.sinks import AlertSink, build_sinks
from tollgate.gateway.anomaly import Assessment, Forecast
from tollgate.gateway.config.loader import ConfigHolder
from tollgate.gateway.config.models import AlertSettings
from tollgate.gateway.runtime import Snapshot
from tollgate.gateway.store.base import BudgetCheck, BudgetFigures, StoreUnavailable
from tollgate.gateway.tracing import Tracer, Tracing

__all__ = ["Observability"]

log = logging.getLogger("tollgate.alerts")


class Observability:
    def __init__(self, *, sinks: Sequence[AlertSink] = (), tracing: Tracing | None = None,
                 dispatcher: Dispatcher | None = None) -> None:
        self.tracing = tracing or Tracing()
        self.dispatcher = dispatcher or Dispatcher()
        self.evaluator = Evaluator(self.dispatcher)
        self._extra: list[AlertSink] = list(sinks)
        self._client: httpx.AsyncClient | None = None
        self._alerts: AlertSettings | None = None
        self._task: asyncio.Task[None] | None = None

    # --- request side -----------------------------------------------------------------------

    def tracer_for(self, snapshot: Snapshot) -> Tracer | None:
        return self.tracing.tracer_for(snapshot)

    def forecast(self, check: BudgetCheck, figures: BudgetFigures,
                 now: datetime) -> Forecast | None:
        return self.evaluator.forecast(check, figures, now)

    def spend_anomalies(self) -> dict[str, Assessment]:
        """Scopes (`key:<id>`, `customer:<id>`) in a spend spike now, as this process sees
        them (every replica evaluates): for a `SpendAnomaly` condition on the VirtualKey."""
        detector = self.evaluator.detector
        return dict(detector.active) if detector is not None else {}

    # --- alert delivery ---------------------------------------------------------------------

    def add_sink(self, sink: AlertSink) -> None:
        """Deliver alerts to `sink` too (kept across config reloads)."""
        self._extra.append(sink)
        self.dispatcher.sinks.append(sink)

    def configure(self, snapshot: Snapshot) -> None:
        """Rebuild the webhook sinks when the `alerts` section changed."""
        settings = snapshot.config.alerts
        if settings == self._alerts and self._alerts is not None:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        self.dispatcher.sinks = [*build_sinks(settings, self._client), *self._extra]
        self.dispatcher.cooldown_seconds = settings.cooldown_seconds
        self._alerts = settings

    async def evaluate(self, snapshot: Snapshot, now: datetime | None = None) -> None:
        self.configure(snapshot)
        await self.evaluator.evaluate(snapshot, now or datetime.now(UTC))

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, holder: ConfigHolder[Snapshot]) -> None:
        exposition.reap_dead_workers()
        self.dispatcher.start()
        self._task = asyncio.create_task(self._loop(holder), name="tollgate-alerts")

    async def _loop(self, holder: ConfigHolder[Snapshot]) -> None:
        while True:
            current = holder.current
            interval = current.config.alerts.evaluation_interval_seconds if current else 5.0
            await asyncio.sleep(interval)
            snapshot = holder.current
            if snapshot is None:
                continue
            try:
                await self.evaluate(snapshot)
            except StoreUnavailable:
                log.info("store unavailable; alert evaluation skipped",
                         extra={"event": "alerts_store_unavailable"})
            except Exception:
                log.exception("alert evaluation failed", extra={"event": "alerts_failed"})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        await self.dispatcher.join(timeout=1.0)
        await self.dispatcher.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.tracing.shutdown()
        exposition.worker_exited()
