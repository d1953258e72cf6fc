"""The status publisher: spend, usage and conditions onto each VirtualKey, from one replica.

Every `interval` seconds the replica that holds the Lease `<config-name>-status` computes, for
every key the operator rendered (`<namespace>.<name>`), what its status should say, and writes
only the keys where that changed since it last wrote them:

- `status.spend` {period, spentUSD, remainingUSD, reservedUSD} of the key's own budget, read
  from the shared store in batches (exact across replicas);
- `BudgetExceeded` (the key's or its customer's budget spent) and `RateLimited` (a rate window
  used up right now), also from the store;
- `status.usage` {requests, rejectedRequests, lastUsedAt} and `Degraded` (requests failed on
  every provider of the fallback chain within the last minute, none succeeded) from the
  publishing replica's own request counters. Counts are not shared between replicas: each
  leader adds what it served to the figures it found when it took over, so the counts cover
  what the publishing replicas served (all of it with one replica; with several, a lower
  bound). `lastUsedAt` is as precise as the interval.
- `SpendAnomaly` (the anomaly detector flags the key's or its customer's spend now) and
  `status.spend.forecastExhaustedAt` (the key's own budget runs out before its period ends at
  the current rate), from the lifespan's Observability when the publisher is given one;
- `ConfigInForce` and `servedConfigRevision`, from the replica roster (roster.py): True when
  every live replica serves this key's current entry.

Writes go to the status subresource as JSON merge patches: first `spend` (only the gateway
writes it; on a leader's first write of a key, an empty patch that only reads the object),
whose answer is the object as it is now; then usage, conditions and servedConfigRevision,
merged into that object's status and sent with its resourceVersion, so a concurrent write by
the operator (its `Ready`) is never overwritten: the patch fails with 409 and is retried next
round. A key whose VirtualKey does not exist (404) is skipped until its figures change. The
gateway's RBAC grants `patch` on `virtualkeys/status` and nothing else on VirtualKeys, which
is why the answer to a patch is how the publisher reads them.

API errors stop the round at the first failure and back off exponentially (interval, 2×,
4× … up to 16× the interval, at most 5 minutes). The publisher runs in the event loop as a
background task and never holds anything a request needs, so publishing trouble cannot slow
requests down.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tollgate.gateway.config.loader import ConfigHolder
from tollgate.gateway.kube.activity import Totals, read_totals
from tollgate.gateway.kube.client import (
    ApiError,
    Conflict,
    KubeClient,
    NotFound,
    virtualkey_status_path,
)
from tollgate.gateway.kube.figures import (
    Want,
    anomaly_want,
    budget_want,
    degraded_want,
    format_time,
    in_force,
    merge_conditions,
    rate_want,
    spend_status,
    split_key_id,
)
from tollgate.gateway.kube.lease import LeaderElector
from tollgate.gateway.kube.revisions import RevisionLog
from tollgate.gateway.kube.roster import Replica, Roster
from tollgate.gateway.pipeline.govern import checks_for
from tollgate.gateway.runtime import Snapshot
from tollgate.gateway.store.base import (
    BudgetCheck,
    BudgetFigures,
    RateCheck,
    RateFigures,
    StoreUnavailable,
    customer_scope,
    key_scope,
)

__all__ = ["StatusPublisher"]

log = logging.getLogger("tollgate.status")

_STORE_BATCH = 256
_YIELD_EVERY = 256
_MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class _Desired:
    """Everything a key's status is computed from; a key is written when this changes."""

    spend: dict[str, str] | None
    spend_known: bool
    period: str
    mine: tuple[int, int]
    last_used: datetime | None
    wants: tuple[tuple[str, Want], ...]
    in_force: tuple[bool, str | None] | None


@dataclass
class _Count:
    """This replica's share of a key's usage counts in the current period."""

    period: str
    start: tuple[int, int]
    base: tuple[int, int] = (0, 0)
    base_last_used: str | None = None
    published_mine: tuple[int, int] = (0, 0)
    term: int = -1


@dataclass
class _Activity:
    totals: Totals = field(default_factory=Totals)
    last_used: datetime | None = None
    recent: deque[tuple[float, int, int]] = field(default_factory=deque)


def _chunks(items: Sequence[Any], size: int) -> Iterator[tuple[Any, ...]]:
    for start in range(0, len(items), size):
        yield tuple(items[start:start + size])


def _own_period(key_id: str, budgets: Iterable[BudgetCheck]) -> str:
    """The key's own budget period ("total" without a budget): what its counts cover."""
    own = next((b for b in budgets if b.scope == key_scope(key_id)), None)
    return own.period_id if own is not None else "total"


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class StatusPublisher:
    """Runs in every replica; publishes only while `elector.leader`."""

    def __init__(self, client: KubeClient, holder: ConfigHolder[Snapshot],
                 elector: LeaderElector, roster: Roster | None, served: RevisionLog, *,
                 interval: float = 15.0, parallel: int = 8, max_writes: int = 2000,
                 degraded_window: float | None = None, observability: Any = None) -> None:
        self.client = client
        self.holder = holder
        self.elector = elector
        self.roster = roster
        self.served = served
        self.interval = interval
        self.parallel = parallel
        self.max_writes = max_writes
        self.degraded_window = degraded_window or max(60.0, 4 * interval)
        self.observability = observability
        """The lifespan's Observability (spend_anomalies(), forecast()); None: neither."""
        self._anomalies: dict[str, Any] = {}
        self._now = datetime.now(UTC)
        self._activity: dict[str, _Activity] = {}
        self._counts: dict[str, _Count] = {}
        self._published: dict[str, _Desired] = {}
        self._store_view: dict[str, tuple[list[tuple[BudgetCheck, BudgetFigures]],
                                          list[RateFigures]]] = {}
        self._checks: dict[str, tuple[tuple[BudgetCheck, ...], tuple[RateCheck, ...]]] = {}
        self._term = 0
        self._leading = False
        self.rounds = 0

    # -- what this replica saw ---------------------------------------------------------------

    async def sample(self, now: datetime) -> None:
        """Read the request counters; note activity and failures per key (every round,
        leader or not, so a new leader knows when its own keys were last used). The counters
        are read in a thread: with thousands of keys that takes a while, and the event loop
        serves requests meanwhile."""
        stamp = now.timestamp()
        totals_by_key = await asyncio.to_thread(read_totals)
        for key_id, totals in totals_by_key.items():
            seen = self._activity.setdefault(key_id, _Activity())
            before = seen.totals
            if (totals.requests, totals.rejected) != (before.requests, before.rejected):
                seen.last_used = now
            succeeded = totals.succeeded - before.succeeded
            failed = totals.failed_everywhere - before.failed_everywhere
            if succeeded or failed:
                seen.recent.append((stamp, succeeded, failed))
            seen.totals = totals
        horizon = stamp - self.degraded_window
        for seen in self._activity.values():
            while seen.recent and seen.recent[0][0] < horizon:
                seen.recent.popleft()

    async def track_periods(self, now: datetime) -> None:
        """Work out every key's budgets and rate limits for this round, and keep its count
        period current (every round, leader or not: a new budget period starts this replica's
        counts from zero)."""
        snapshot = self.holder.current
        if snapshot is None:
            return
        policies = {p.id: p for p in snapshot.keys_by_hash.values()}
        for gone in set(self._counts) - set(policies):
            del self._counts[gone]
        checks: dict[str, tuple[tuple[BudgetCheck, ...], tuple[RateCheck, ...]]] = {}
        for index, (key_id, policy) in enumerate(policies.items()):
            checks[key_id] = checks_for(policy, now)
            self._count_for(key_id, _own_period(key_id, checks[key_id][0]))
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)  # thousands of keys: let requests through
        self._checks = checks

    def _count_for(self, key_id: str, period: str) -> _Count:
        count = self._counts.get(key_id)
        if count is None:
            # Tracked from this process's first round: all it served so far is this period's.
            count = self._counts[key_id] = _Count(period, (0, 0))
        elif count.period != period:
            totals = (self._activity.get(key_id) or _Activity()).totals
            count.period, count.start = period, (totals.requests, totals.rejected)
            count.base, count.published_mine = (0, 0), (0, 0)
        return count

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        delay = min(self.interval, 1.0)
        while True:
            await asyncio.sleep(delay)
            delay = self.interval
            now = datetime.now(UTC)
            try:
                await self.sample(now)
                await self.track_periods(now)
            except Exception:  # counters are a convenience; never let them stop publishing
                log.exception("could not read the request counters")
            if not self.elector.leader:
                self._leading = False
                failures = 0
                continue
            if not self._leading:
                # A new term: what earlier terms wrote may have been changed since.
                self._leading = True
                self._term += 1
                self._published.clear()
            try:
                written = await self.publish_once(now)
                failures = 0
                if written:
                    log.info("status published for %d VirtualKeys", written,
                             extra={"event": "status_published", "keys": written})
            except ApiError as exc:
                failures += 1
                ceiling = min(_MAX_BACKOFF_SECONDS, max(self.interval, 16 * self.interval))
                delay = min(ceiling, self.interval * 2 ** failures) * random.uniform(0.9, 1.1)
                log.warning("status publishing failed; retrying in %.1f s: %s", delay, exc,
                            extra={"event": "status_publish_failed"})
            except Exception:
                failures += 1
                log.exception("status publishing failed")
                delay = min(_MAX_BACKOFF_SECONDS, self.interval * 2 ** failures)

    async def publish_once(self, now: datetime) -> int:
        """One round; the number of VirtualKeys written. Raises ApiError on API trouble."""
        self.rounds += 1
        snapshot = self.holder.current
        if snapshot is None:
            return 0
        policies = {p.id: p for p in snapshot.keys_by_hash.values()}
        targets = [(key_id, policy, ref) for key_id, policy in sorted(policies.items())
                   if (ref := split_key_id(key_id)) is not None]
        live = {key_id for key_id, _, _ in targets}
        for cache in (self._published, self._store_view):
            for gone in set(cache) - live:
                del cache[gone]
        checks = {key_id: self._checks.get(key_id) or checks_for(policy, now)
                  for key_id, policy, _ in targets}
        await self._read_store(snapshot, checks, now)
        replicas = await self._replicas()
        self._now = now
        self._anomalies = self.observability.spend_anomalies() \
            if self.observability is not None else {}
        desired: dict[str, _Desired] = {}
        for index, (key_id, policy, _) in enumerate(targets):
            customer = getattr(policy, "customer", None)
            scopes = (key_scope(key_id),) + ((customer_scope(customer.id),)
                                              if customer is not None else ())
            desired[key_id] = self._desire(key_id, checks[key_id][0], replicas, scopes)
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        changed = [(key_id, ref) for key_id, _, ref in targets
                   if self._published.get(key_id) != desired[key_id]][:self.max_writes]
        if not changed:
            return 0
        return await self._write_all(changed, desired, replicas, now)

    # -- reading ---------------------------------------------------------------------------------

    async def _read_store(self, snapshot: Snapshot,
                          checks: dict[str, tuple[tuple[BudgetCheck, ...],
                                                  tuple[RateCheck, ...]]],
                          now: datetime) -> None:
        budgets: list[BudgetCheck] = []
        rates: list[RateCheck] = []
        spans: dict[str, tuple[int, int, int, int]] = {}
        for key_id, (key_budgets, key_rates) in checks.items():
            spans[key_id] = (len(budgets), len(key_budgets), len(rates), len(key_rates))
            budgets.extend(key_budgets)
            rates.extend(key_rates)
        try:
            spent: list[BudgetFigures] = []
            for chunk in _chunks(budgets, _STORE_BATCH):
                spent.extend(await snapshot.store.spend(chunk, now=now))
            used: list[RateFigures] = []
            for chunk in _chunks(rates, _STORE_BATCH):
                used.extend(await snapshot.store.rate_status(chunk, now=now))
        except StoreUnavailable as exc:
            log.warning("the state store is unavailable; spend and limits keep their last "
                        "published values: %s", exc)
            return
        for key_id, (b0, bn, r0, rn) in spans.items():
            self._store_view[key_id] = (list(zip(budgets[b0:b0 + bn], spent[b0:b0 + bn],
                                                 strict=True)), used[r0:r0 + rn])

    async def _replicas(self) -> list[Replica] | None:
        if self.roster is None:
            return None
        try:
            return await self.roster.live()
        except ApiError as exc:
            log.warning("cannot read the replica roster: %s", exc)
            return None

    def _desire(self, key_id: str, budgets: tuple[BudgetCheck, ...],
                replicas: list[Replica] | None, scopes: tuple[str, ...] = ()) -> _Desired:
        wants: list[tuple[str, Want]] = []
        spend: dict[str, str] | None = None
        view = self._store_view.get(key_id)
        if view is not None:
            pairs, windows = view
            own = next(((b, f) for b, f in pairs if b.scope == key_scope(key_id)), None)
            spend = spend_status(own[1], self._exhausts_at(*own)) if own is not None else None
            wants += [("BudgetExceeded", budget_want(pairs)), ("RateLimited", rate_want(windows))]
        if self.observability is not None:
            wants.append(("SpendAnomaly", anomaly_want(scopes, self._anomalies)))
        activity = self._activity.get(key_id) or _Activity()
        failed = sum(f for _, _, f in activity.recent)
        succeeded = sum(s for _, s, _ in activity.recent)
        wants.append(("Degraded", degraded_want(failed, succeeded, self.degraded_window)))
        forced: tuple[bool, str | None] | None = None
        if replicas is not None:
            want, revision = in_force(key_id, replicas, self.served)
            wants.append(("ConfigInForce", want))
            forced = (want.status == "True", revision)
        period = _own_period(key_id, budgets)
        count = self._count_for(key_id, period)
        totals = activity.totals
        mine = (totals.requests - count.start[0], totals.rejected - count.start[1])
        if view is None:  # the store did not answer: keep what was last written
            published = self._published.get(key_id)
            spend = published.spend if published is not None else None
            known = published is not None and published.spend_known
        else:
            known = True
        return _Desired(spend, known, period, mine, activity.last_used, tuple(wants), forced)

    def _exhausts_at(self, check: BudgetCheck, figures: BudgetFigures) -> datetime | None:
        """When the forecast says the key's own budget runs out before its period ends."""
        if self.observability is None:
            return None
        forecast = self.observability.forecast(check, figures, self._now)
        if forecast is None or not forecast.flagged or forecast.exhausted:
            return None
        return forecast.exhausts_at

    # -- writing -------------------------------------------------------------------------------

    async def _write_all(self, changed: Iterable[tuple[str, tuple[str, str]]],
                         desired: dict[str, _Desired], replicas: list[Replica] | None,
                         now: datetime) -> int:
        pending = iter(changed)
        written = 0
        failure: list[ApiError] = []

        async def worker() -> None:
            nonlocal written
            for key_id, (namespace, name) in pending:
                if failure or not self.elector.leader:
                    return
                try:
                    if await self._write(key_id, namespace, name, desired[key_id], now):
                        written += 1
                except NotFound:
                    # No such VirtualKey (or not yet): try again once its figures change.
                    self._published[key_id] = desired[key_id]
                except Conflict:
                    pass  # changed meanwhile (the operator): next round works from the fresh one
                except ApiError as exc:
                    if exc.status in (400, 422):
                        log.warning("VirtualKey %s/%s refused its status: %s", namespace, name,
                                    exc)
                        self._published[key_id] = desired[key_id]
                    else:
                        failure.append(exc)
                        return

        await asyncio.gather(*(worker() for _ in range(self.parallel)))
        if failure:
            raise failure[0]
        return written

    async def _write(self, key_id: str, namespace: str, name: str, want: _Desired,
                     now: datetime) -> bool:
        """Write one key; True when something on it changed."""
        path = virtualkey_status_path(namespace, name)
        count = self._counts[key_id]
        first = count.term != self._term
        # The first write of a term reads the object as it is (an empty patch answers with it):
        # its usage counts, and the period they belong to, are the base this term adds to.
        body = await self.client.merge_patch(path, {"status": {"spend": want.spend}}
                                             if want.spend_known and not first
                                             else {"status": {}})
        metadata = body.get("metadata") or {}
        status = body.get("status") or {}
        if first:
            count.term = self._term
            found = status.get("usage") or {}
            found_period = (status.get("spend") or {}).get("period") \
                if want.spend is not None else want.period
            if found and found_period == want.period:
                count.base = (max(0, int(found.get("requests") or 0) - count.published_mine[0]),
                              max(0, int(found.get("rejectedRequests") or 0)
                                  - count.published_mine[1]))
                count.base_last_used = found.get("lastUsedAt")
            else:
                count.base, count.base_last_used = (0, 0), None
        usage: dict[str, Any] = {"requests": count.base[0] + want.mine[0],
                                 "rejectedRequests": count.base[1] + want.mine[1]}
        last_used = max((t for t in (_parse_time(count.base_last_used), want.last_used) if t),
                        default=None)
        if last_used is not None:
            usage["lastUsedAt"] = format_time(last_used)
        generation = metadata.get("generation")
        conditions = merge_conditions(status.get("conditions"), dict(want.wants), generation,
                                      now)
        patch: dict[str, Any] = {}
        if want.spend_known and status.get("spend") != want.spend:
            patch["spend"] = want.spend  # None removes it (the key lost its budget)
        if status.get("usage") != usage:
            patch["usage"] = usage
        if conditions != status.get("conditions"):
            patch["conditions"] = conditions
        if want.in_force is not None:
            served = self._served_revision(key_id, want.in_force, status)
            if served is not None and status.get("servedConfigRevision") != served:
                patch["servedConfigRevision"] = served
        if patch:
            await self.client.merge_patch(path, {
                "metadata": {"resourceVersion": metadata.get("resourceVersion")},
                "status": patch})
        self._published[key_id] = want
        count.published_mine = want.mine
        return True

    def _served_revision(self, key_id: str, forced: tuple[bool, str | None],
                         status: dict[str, Any]) -> str | None:
        everywhere, revision = forced
        if everywhere and self.served.unchanged_from_start(key_id) \
                and isinstance(status.get("configRevision"), str):
            # Unchanged since this process started: the operator's own record of the
            # revision it rendered this generation into is the better name for it.
            return str(status["configRevision"])
        return revision
