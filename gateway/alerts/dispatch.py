"""Alert delivery off the request path: a bounded queue, retries with backoff, and dedupe.

`submit()` never waits: a full queue drops the alert (counted in
`tollgate_alerts_dropped_total`). A worker task takes alerts in order and delivers each to every
sink that accepts it, each delivery in its own task (at most `concurrency` at once), so a slow
or failing receiver delays only its own alerts. A failed delivery is retried up to the sink's
`max_attempts`, after `base_delay * 2**(n-1)` seconds (capped at `max_delay`, times a random
factor in [0.8, 1.2]), or after the receiver's Retry-After when longer. The same alert (dedup key
and status) is sent to a sink at most once per `cooldown_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from tollgate.gateway import metrics
from tollgate.gateway.alerts.model import Alert
from tollgate.gateway.alerts.sinks import AlertSink, DeliveryFailed

__all__ = ["Dispatcher"]

log = logging.getLogger("tollgate.alerts")


class Dispatcher:
    def __init__(
        self,
        sinks: Sequence[AlertSink] = (),
        *,
        queue_size: int = 1000,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        cooldown_seconds: float = 0.0,
        concurrency: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sinks: list[AlertSink] = list(sinks)
        self.cooldown_seconds = cooldown_seconds
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._sleep = sleep
        self._sent: dict[tuple[str, str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._busy = False

    # --- the producer side ----------------------------------------------------------------

    def submit(self, alert: Alert) -> bool:
        """Queue an alert for delivery; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            metrics.ALERTS_DROPPED.inc()
            log.warning("alert queue full; alert dropped",
                        extra={"event": "alert_dropped", "dedup_key": alert.dedup_key})
            return False
        return True

    # --- the worker -----------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="tollgate-alert-dispatcher")

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            self._busy = True
            try:
                for sink in list(self.sinks):
                    if not sink.accepts(alert) or self._suppressed(sink, alert):
                        continue
                    await self._slots.acquire()
                    task = asyncio.create_task(self._deliver(sink, alert))
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
            finally:
                self._busy = False
                self._queue.task_done()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    def _suppressed(self, sink: AlertSink, alert: Alert) -> bool:
        now = self._clock()
        mark = (sink.name, alert.dedup_key, alert.status)
        last = self._sent.get(mark)
        if last is not None and now - last < self.cooldown_seconds:
            metrics.ALERT_DELIVERIES.labels(sink.name, "suppressed").inc()
            return True
        if len(self._sent) > 10_000:
            self._sent = {k: t for k, t in self._sent.items()
                          if now - t < self.cooldown_seconds}
        self._sent[mark] = now
        return False

    async def _deliver(self, sink: AlertSink, alert: Alert) -> None:
        attempts = max(1, getattr(sink, "max_attempts", 1))
        for attempt in range(1, attempts + 1):
            try:
                await sink.send(alert)
            except DeliveryFailed as failure:
                final = not failure.retryable or attempt == attempts
                self._log_failure(sink, alert, failure.reason, attempt, final)
                if final:
                    metrics.ALERT_DELIVERIES.labels(sink.name, "failed").inc()
                    return
                delay = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
                delay *= random.uniform(0.8, 1.2)
                if failure.retry_after is not None:
                    delay = max(delay, min(failure.retry_after, self._max_delay))
                metrics.ALERT_DELIVERIES.labels(sink.name, "retry").inc()
                await self._sleep(delay)
            except Exception:  # a sink bug must not kill the dispatcher
                log.exception("alert sink %r failed unexpectedly", sink.name,
                              extra={"event": "alert_delivery_failed", "webhook": sink.name})
                metrics.ALERT_DELIVERIES.labels(sink.name, "failed").inc()
                return
            else:
                metrics.ALERT_DELIVERIES.labels(sink.name, "ok").inc()
                return

    @staticmethod
    def _log_failure(sink: AlertSink, alert: Alert, reason: str, attempt: int,
                     final: bool) -> None:
        log.warning("alert delivery to %r failed (%s)%s", sink.name, reason,
                    "; giving up" if final else "; will retry",
                    extra={"event": "alert_delivery_failed", "webhook": sink.name,
                           "dedup_key": alert.dedup_key, "attempt": attempt, "final": final})

    async def join(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until everything queued has been delivered or given up on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._tasks and not self._busy:
                return True
            await asyncio.sleep(0.01)
        return False

    async def aclose(self) -> None:
        pending = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in pending:
            task.cancel()
        for task in pending:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._worker = None
