"""Per-key request counts of this process, read from the request counter in gateway/metrics.py.

The pipeline already counts every request by key and outcome for Prometheus; the status
publisher reads those counters instead of adding a second set on the hot path. Samples are
read by label *name* (`key`, `outcome`, `provider`), so labels added to the counter change
nothing here.

Outcomes: "rejected" is a request refused by the gateway itself (budget, rate limit, policy,
a malformed request); everything else was admitted and counts as a request. A request whose
outcome is "error" and that no provider served ("none") failed along its whole fallback chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollgate.gateway import metrics

__all__ = ["Totals", "read_totals"]


@dataclass
class Totals:
    """Counts since this process started (monotonic, like the counter)."""

    requests: int = 0
    rejected: int = 0
    succeeded: int = 0
    failed_everywhere: int = 0


def read_totals() -> dict[str, Totals]:
    """key id → totals."""
    totals: dict[str, Totals] = {}
    for metric in metrics.REQUESTS.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            key, outcome = sample.labels.get("key"), sample.labels.get("outcome")
            if not key or key == "-" or outcome is None:
                continue
            count = int(sample.value)
            if not count:
                continue
            entry = totals.setdefault(key, Totals())
            if outcome == "rejected":
                entry.rejected += count
                continue
            entry.requests += count
            if outcome == "ok":
                entry.succeeded += count
            elif outcome == "error" and sample.labels.get("provider", "none") == "none":
                entry.failed_everywhere += count
    return totals
