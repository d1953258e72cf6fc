"""Status conditions, merged the way Kubernetes expects (metav1.Condition semantics).

Pure: every function returns a new list and never reads the clock (callers pass `now`), so a
handler that recomputes the same state produces an identical list and can skip the patch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tollgate.operator.render import Report
from tollgate.operator.validate import Reason, Severity

__all__ = [
    "CONDITION_TYPES",
    "MESSAGE_MAX",
    "ConditionUpdate",
    "format_time",
    "get_condition",
    "initial_conditions",
    "ready_condition",
    "set_condition",
]

CONDITION_TYPES: dict[str, tuple[str, ...]] = {
    "VirtualKey": ("Ready", "BudgetExceeded", "RateLimited", "Degraded", "SpendAnomaly"),
    "ProviderCredential": ("Ready",),
}
"""Every condition each kind may carry; all are written as Unknown on the first visit."""

MESSAGE_MAX = 32768


@dataclass(frozen=True)
class ConditionUpdate:
    status: str
    reason: str
    message: str


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as metav1.Time serialises."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str
                  ) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Merge one condition by `type`, keeping the others and their order.

    `lastTransitionTime` moves only when `status` flips; a new reason or message alone keeps it,
    so `kubectl get` ages stay meaningful.
    """
    if status not in ("True", "False", "Unknown"):
        raise ValueError(f"condition status must be 'True', 'False' or 'Unknown', not {status!r}")
    if len(message) > MESSAGE_MAX:
        message = message[: MESSAGE_MAX - 3] + "..."
    merged: list[dict[str, Any]] = []
    found = False
    for existing in conditions or ():
        if existing.get("type") != type_:
            merged.append(dict(existing))
            continue
        found = True
        flipped = existing.get("status") != status
        merged.append(_condition(type_, status, reason, message, observed_generation,
                                 format_time(now) if flipped or "lastTransitionTime" not in existing
                                 else existing["lastTransitionTime"]))
    if not found:
        merged.append(_condition(type_, status, reason, message, observed_generation,
                                 format_time(now)))
    return merged


def _condition(type_: str, status: str, reason: str, message: str,
               observed_generation: int | None, last_transition: str) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": type_, "status": status}
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    condition.update(lastTransitionTime=last_transition, reason=reason, message=message)
    return condition


def initial_conditions(
    conditions: Sequence[Mapping[str, Any]] | None,
    kind: str,
    observed_generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Every known condition of `kind` that is still missing, as Unknown (first visit)."""
    merged = [dict(c) for c in conditions or ()]
    for type_ in CONDITION_TYPES[kind]:
        if get_condition(merged, type_) is None:
            merged = set_condition(merged, type_, "Unknown", "Reconciling",
                                   "The operator has not evaluated this condition yet.",
                                   observed_generation, now)
    return merged


def ready_condition(report: Report, revision: str | None = None) -> ConditionUpdate:
    """The Ready condition for an object, from what `render()` reported about it."""
    errors = [p for p in report.problems if p.severity is Severity.ERROR]
    warnings = [p for p in report.problems if p.severity is Severity.WARNING]
    where = f" in config revision {revision}" if revision else ""
    if report.ready:
        message = f"Served{where}."
        if warnings:
            message += " Warnings: " + "; ".join(str(p) for p in warnings)
        return ConditionUpdate("True", str(Reason.ACCEPTED), message)
    first = (errors or warnings)[0] if report.problems else None
    reason = str(first.reason) if first else str(Reason.INVALID_SPEC)
    details = "; ".join(str(p) for p in errors + warnings)
    if report.rendered:
        message = f"Served{where}, narrower than declared: {details}"
    else:
        message = f"Not served: {details}" if details else "Not served."
    return ConditionUpdate("False", reason, message)
