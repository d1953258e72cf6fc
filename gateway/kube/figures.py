"""What the status publisher writes for one key, as pure functions of what it knows.

Conditions are merged with metav1.Condition semantics, as the operator does
(operator/conditions.py; the gateway may not import the operator, so the ten lines are
repeated here): merged by `type`, every other condition (the operator's `Ready`) kept as it
is, and `lastTransitionTime` moved only when `status` flips.

Messages stay the same while the facts they state do (no amounts, no counts), so a condition
is rewritten only when something a reader cares about changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tollgate.gateway.kube.revisions import RevisionLog
from tollgate.gateway.kube.roster import Replica
from tollgate.gateway.money import format_usd
from tollgate.gateway.store.base import BudgetCheck, BudgetFigures, RateFigures

__all__ = [
    "GATEWAY_CONDITIONS",
    "Want",
    "anomaly_want",
    "budget_want",
    "degraded_want",
    "format_time",
    "in_force",
    "merge_conditions",
    "rate_want",
    "set_condition",
    "spend_status",
    "split_key_id",
]

GATEWAY_CONDITIONS = ("BudgetExceeded", "RateLimited", "Degraded", "SpendAnomaly",
                      "ConfigInForce")
"""The condition types the gateway owns; all others belong to the operator."""

MESSAGE_MAX = 32768
_PLAIN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")


def split_key_id(key_id: str) -> tuple[str, str] | None:
    """The VirtualKey a gateway key id was rendered from: the operator names keys
    `<namespace>.<name>` (namespaces hold no dots). None for ids it cannot have rendered that
    way (standalone keys, or ids shortened with a hash because they were longer than 63
    characters: those cannot be mapped back)."""
    if len(key_id) > 63 or not _PLAIN_ID.match(key_id):
        return None
    namespace, name = key_id.split(".", 1)
    return namespace, name


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as metav1.Time serialises."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Want:
    """A condition as the gateway wants it (status, reason, message)."""

    status: str
    reason: str
    message: str


def set_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str, want: Want,
                  observed_generation: int | None, now: datetime) -> list[dict[str, Any]]:
    """Merge one condition by `type`, keeping the others and their order; `lastTransitionTime`
    moves only when `status` flips."""
    if want.status not in ("True", "False", "Unknown"):
        raise ValueError(f"condition status must be 'True', 'False' or 'Unknown', not "
                         f"{want.status!r}")
    message = want.message if len(want.message) <= MESSAGE_MAX \
        else want.message[: MESSAGE_MAX - 3] + "..."
    merged: list[dict[str, Any]] = []
    found = False
    for existing in conditions or ():
        if existing.get("type") != type_:
            merged.append(dict(existing))
            continue
        found = True
        flipped = existing.get("status") != want.status
        since = format_time(now) if flipped or "lastTransitionTime" not in existing \
            else existing["lastTransitionTime"]
        merged.append(_condition(type_, want, message, observed_generation, since))
    if not found:
        merged.append(_condition(type_, want, message, observed_generation, format_time(now)))
    return merged


def _condition(type_: str, want: Want, message: str, observed_generation: int | None,
               last_transition: str) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": type_, "status": want.status}
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    condition.update(lastTransitionTime=last_transition, reason=want.reason, message=message)
    return condition


def merge_conditions(conditions: Sequence[Mapping[str, Any]] | None,
                     wants: Mapping[str, Want], observed_generation: int | None,
                     now: datetime) -> list[dict[str, Any]]:
    merged = [dict(c) for c in conditions or ()]
    for type_, want in wants.items():
        merged = set_condition(merged, type_, want, observed_generation, now)
    return merged


# --- spend and budgets ----------------------------------------------------------------------


def spend_status(figures: BudgetFigures,
                 exhausts_at: datetime | None = None) -> dict[str, str]:
    """`status.spend` from the key's own budget figures (decimal strings, as the CRD says);
    `exhausts_at`: when the forecast says the budget runs out before its period ends."""
    spend = {
        "period": figures.period_id,
        "spentUSD": format_usd(figures.spent_micros),
        "remainingUSD": format_usd(figures.remaining_micros),
        "reservedUSD": format_usd(figures.reserved_micros),
    }
    if exhausts_at is not None:
        # Whole hours: the date moves with every request otherwise, rewriting the status.
        spend["forecastExhaustedAt"] = format_time(exhausts_at.replace(minute=0, second=0,
                                                                       microsecond=0))
    return spend


def anomaly_want(scopes: Iterable[str], anomalies: Mapping[str, Any]) -> Want:
    """SpendAnomaly: True while the anomaly detector flags the key's or its customer's spend
    (`scopes`: `key:<id>`, `customer:<id>`; `anomalies`: the detector's active spikes)."""
    flagged = [scope for scope in scopes if scope in anomalies]
    if not flagged:
        return Want("False", "NormalSpend", "Spend is within its usual range.")
    whose = " and ".join("customer " + s.partition(":")[2] if s.startswith("customer:")
                         else "the key" for s in flagged)
    return Want("True", "SpendSpike",
                f"Spend of {whose} is well above its usual rate (anomaly detector).")


def _whose(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"customer {name}'s budget" if kind == "customer" else "the key's budget"


def budget_want(budgets: Iterable[tuple[BudgetCheck, BudgetFigures]]) -> Want:
    """BudgetExceeded: True once the settled spend of any budget that applies (the key's or
    its customer's) has reached its limit for the current period."""
    pairs = list(budgets)
    if not pairs:
        return Want("False", "NoBudget", "No budget applies to this key.")
    for check, figures in pairs:
        if figures.spent_micros >= figures.limit_micros:
            until = f" (until {format_time(check.period_end)})" if check.period_end else ""
            return Want("True", "BudgetSpent",
                        f"{_whose(figures.scope).capitalize()} of "
                        f"{format_usd(figures.limit_micros)} USD for period "
                        f"{figures.period_id} is spent; paid requests are rejected until the "
                        f"period ends{until}.")
    periods = ", ".join(sorted({f.period_id for _, f in pairs}))
    return Want("False", "WithinBudget", f"Spend is within budget for period {periods}.")


_RATE_NAMES = (("requests", "requestsPerMinute"), ("tokens", "tokensPerMinute"))


def rate_want(rates: Iterable[RateFigures]) -> Want:
    """RateLimited: True while a rate limit that applies is used up in the current minute (or
    its concurrency limit is reached)."""
    figures = list(rates)
    if not figures:
        return Want("False", "NoRateLimit", "No rate limit applies to this key.")
    reached = []
    for window in figures:
        whose = "customer " + window.scope.partition(":")[2] if window.scope.startswith(
            "customer:") else "key"
        for attribute, name in _RATE_NAMES:
            remaining = getattr(window, f"{attribute}_remaining")
            if remaining is not None and remaining <= 0:
                reached.append(f"`{name}` ({getattr(window, f'{attribute}_limit')}) of the "
                               f"{whose}")
        if window.concurrent_limit is not None and window.in_flight >= window.concurrent_limit:
            reached.append(f"`maxConcurrent` ({window.concurrent_limit}) of the {whose}")
    if reached:
        return Want("True", "RateLimitReached",
                    f"Requests are being rejected: {', '.join(reached)} reached.")
    return Want("False", "WithinRateLimits", "Within rate limits.")


def degraded_want(failed: int, succeeded: int, window_seconds: float) -> Want:
    """Degraded: True when requests failed on every provider of the fallback chain within the
    window and none succeeded."""
    if failed and not succeeded:
        return Want("True", "FallbackChainFailing",
                    f"Requests in the last {window_seconds:.0f} s failed on every provider of "
                    "the fallback chain; none succeeded.")
    return Want("False", "Serving", "No request failed on its whole fallback chain recently.")


# --- is the key's current config served everywhere? ------------------------------------------


def in_force(key_id: str, replicas: Sequence[Replica], served: RevisionLog
             ) -> tuple[Want, str | None]:
    """ConfigInForce for one key, and the revision to publish as `servedConfigRevision`:
    this key's own revision when every live replica serves it, else the revision a lagging
    replica still serves."""
    since = served.since(key_id)
    lagging = sorted((r for r in replicas if not served.covers(r.revision, key_id)),
                     key=lambda r: (r.revision or "", r.identity))
    if not replicas:
        return Want("Unknown", "NoReplicas", "No gateway replica has reported its config "
                                             "revision yet."), None
    if not lagging:
        return Want("True", "ServedEverywhere",
                    "Every live gateway replica serves this key's current configuration."), since
    names = ", ".join(f"{r.identity} (revision {r.revision or 'none'})" for r in lagging[:5])
    more = f" and {len(lagging) - 5} more" if len(lagging) > 5 else ""
    return Want("False", "RolloutInProgress",
                f"Gateway replicas still serving an older configuration: {names}{more}."), \
        lagging[0].revision
