"""`tollgate usage export`: the ledger as CSV or JSON lines, raw or grouped, for billing.

Grouping fields: `customer`, `key`, `provider`, `model`, `outcome`, `tag:NAME` (a per-request
tag, falling back to the key's metadata of the same name, so `tag:billingCode` works whether
the code was sent per request or declared on the key). Money columns are decimal strings.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollgate.gateway.money import format_usd
from tollgate.gateway.store.base import LedgerRecord

__all__ = ["Group", "group_records", "parse_group_by", "render"]

_PLAIN_FIELDS = {
    "customer": lambda r: r.customer_id or "",
    "key": lambda r: r.key_id,
    "provider": lambda r: r.provider or "",
    "model": lambda r: r.model or "",
    "outcome": lambda r: r.outcome,
}
_SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
         "cost_micros")


def parse_group_by(text: str | None) -> list[str]:
    """'customer,tag:billingCode' → ['customer', 'tag:billingCode'], with unknown names refused."""
    if not text:
        return []
    fields = [part.strip() for part in text.split(",") if part.strip()]
    for name in fields:
        if name not in _PLAIN_FIELDS and not (name.startswith("tag:") and len(name) > 4):
            known = ", ".join([*_PLAIN_FIELDS, "tag:NAME"])
            raise ValueError(f"unknown --group-by field {name!r}; use {known}")
    return fields


def _value(record: LedgerRecord, name: str) -> str:
    if name.startswith("tag:"):
        tag = name[4:]
        return record.tags.get(tag) or record.metadata.get(tag) or ""
    return str(_PLAIN_FIELDS[name](record))


@dataclass
class Group:
    values: tuple[str, ...]
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0))

    def add(self, record: LedgerRecord) -> None:
        self.sums["requests"] += 1
        self.sums["input_tokens"] += record.input_tokens
        self.sums["output_tokens"] += record.output_tokens
        self.sums["cached_tokens"] += record.cached_tokens
        self.sums["reasoning_tokens"] += record.reasoning_tokens
        self.sums["cost_micros"] += record.cost_micros


async def group_records(records: AsyncIterator[LedgerRecord], fields: list[str]) -> list[Group]:
    groups: dict[tuple[str, ...], Group] = {}
    async for record in records:
        values = tuple(_value(record, name) for name in fields)
        group = groups.get(values)
        if group is None:
            group = groups[values] = Group(values)
        group.add(record)
    return [groups[k] for k in sorted(groups)]


def _group_rows(groups: Iterable[Group], fields: list[str]) -> Iterator[dict[str, Any]]:
    for group in groups:
        row: dict[str, Any] = dict(zip(fields, group.values, strict=True))
        for name in _SUMS[:-1]:
            row[name] = group.sums[name]
        row["cost_usd"] = format_usd(group.sums["cost_micros"])
        yield row


def _record_row(record: LedgerRecord) -> dict[str, Any]:
    return {
        "time": record.time.isoformat(), "request_id": record.request_id,
        "key": record.key_id, "customer": record.customer_id or "",
        "provider": record.provider or "", "model": record.model or "",
        "input_tokens": record.input_tokens, "output_tokens": record.output_tokens,
        "cached_tokens": record.cached_tokens, "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": format_usd(record.cost_micros), "latency_ms": record.latency_ms,
        "outcome": record.outcome, "attempts": record.attempts,
        "tags": orjson.dumps(dict(record.tags)).decode(),
        "metadata": orjson.dumps(dict(record.metadata)).decode(),
    }


def render(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    rows = list(rows)
    if fmt == "jsonl":
        return "".join(orjson.dumps(row).decode() + "\n" for row in rows)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


async def export(records: AsyncIterator[LedgerRecord], group_by: list[str], fmt: str) -> str:
    if group_by:
        return render(_group_rows(await group_records(records, group_by), group_by), fmt)
    return render([_record_row(r) async for r in records], fmt)
