"""Price catalog: shipped data file plus per-provider overrides from config.

Prices are looked up by (provider name, model) first — an override in GatewayConfig.pricing —
then by (provider type, model) in the catalog shipped with the package. Nothing here needs the
network: the catalog is package data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any

from tollgate.gateway.money import Micros, per_million_to_picos_per_token, picos_to_micros

__all__ = [
    "Price",
    "PriceBook",
    "Usage",
    "WriteMultipliers",
    "default_write_multipliers",
    "load_catalog",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one request, normalised to OpenAI's accounting.

    `input_tokens` includes `cached_input_tokens` (cache reads) and `cache_write_tokens` (tokens
    written to the prompt cache, of which `cache_write_1h_tokens` with a one-hour lifetime);
    `output_tokens` includes `reasoning_tokens`. Adapters for providers that count differently
    (Anthropic's `input_tokens` excludes both cache classes) convert into this shape exactly once.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class WriteMultipliers:
    """Cache-write prices as multiples of the input price, for entries that name none.

    Read from the catalog's `cacheWriteMultipliers` (data, not code): Anthropic's published
    rule is 1.25x input for a 5-minute write and 2x for a one-hour write."""

    five_minutes: Decimal = Decimal("1.25")
    one_hour: Decimal = Decimal("2")

    def apply(self, input_picos: int, multiplier: Decimal) -> int:
        """input × multiplier in whole pico-dollars per token, rounded half up."""
        return int((Decimal(input_picos) * multiplier).to_integral_value(ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Price:
    """Integer pico-dollars per token for each token class.

    Every input token is in exactly one class: plain input, cache read (`cached_input`), or
    cache write (`cache_write` for 5-minute writes, `cache_write_1h` for one-hour writes)."""

    input: int
    cached_input: int
    output: int
    max_output_tokens: int | None = None
    cache_write: int | None = None
    cache_write_1h: int | None = None
    long_context: Price | None = None
    """The whole request's price when its input passes `long_context_above` tokens (Gemini
    2.5 Pro bills a prompt over 200k tokens at a higher rate for every token)."""
    long_context_above: int | None = None

    @classmethod
    def from_strings(cls, input: str, output: str, cached_input: str | None,
                     max_output_tokens: int | None = None, *, cache_write: str | None = None,
                     cache_write_1h: str | None = None,
                     multipliers: WriteMultipliers | None = None) -> Price:
        """Prices in USD per million tokens. A missing cached price is the input price; a
        missing cache-write price is the input price times the catalog's multiplier."""
        picos_in = per_million_to_picos_per_token(input)
        rule = multipliers or default_write_multipliers()
        return cls(
            input=picos_in,
            output=per_million_to_picos_per_token(output),
            cached_input=(
                per_million_to_picos_per_token(cached_input) if cached_input else picos_in
            ),
            max_output_tokens=max_output_tokens,
            cache_write=(
                per_million_to_picos_per_token(cache_write) if cache_write
                else rule.apply(picos_in, rule.five_minutes)
            ),
            cache_write_1h=(
                per_million_to_picos_per_token(cache_write_1h) if cache_write_1h
                else rule.apply(picos_in, rule.one_hour)
            ),
        )

    def cost(self, usage: Usage) -> Micros:
        """Each token priced once, in exactly one class; rounded once, half up. A request
        whose input passes the long-context threshold is priced wholly at that tier.

        Reads come out of the input first, then writes (clamped, so a provider reporting more
        cache tokens than input can never produce a negative class)."""
        if self.long_context is not None:
            tier = self.for_usage(usage)
            if tier is not self:
                return tier.cost(usage)
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        writes = min(usage.cache_write_tokens, usage.input_tokens - cached)
        writes_1h = min(usage.cache_write_1h_tokens, writes)
        write_5m = self.cache_write if self.cache_write is not None else self.input
        write_1h = self.cache_write_1h if self.cache_write_1h is not None else write_5m
        picos = (
            (usage.input_tokens - cached - writes) * self.input
            + cached * self.cached_input
            + (writes - writes_1h) * write_5m
            + writes_1h * write_1h
            + usage.output_tokens * self.output
        )
        return picos_to_micros(picos)

    def for_usage(self, usage: Usage) -> Price:
        """The tier `usage` is billed at: the long-context price above its threshold."""
        tier, above = self.long_context, self.long_context_above
        if tier is not None and above is not None and usage.input_tokens > above:
            return tier
        return self


Catalog = dict[tuple[str, str], Price]


def _raw_catalog() -> dict[str, Any]:
    text = resources.files("tollgate.gateway").joinpath("data/prices.json").read_text("utf-8")
    raw: dict[str, Any] = json.loads(text)
    return raw


def _multipliers(raw: dict[str, Any]) -> WriteMultipliers:
    rule = raw.get("cacheWriteMultipliers") or {}
    default = WriteMultipliers()
    return WriteMultipliers(
        five_minutes=Decimal(rule.get("5m", str(default.five_minutes))),
        one_hour=Decimal(rule.get("1h", str(default.one_hour))),
    )


@cache
def default_write_multipliers() -> WriteMultipliers:
    """The packaged catalog's cache-write rule (read once; package data never changes)."""
    return _multipliers(_raw_catalog())


def load_catalog() -> Catalog:
    """Read the packaged catalog (data/prices.json) into {(provider type, model): Price}."""
    raw = _raw_catalog()
    multipliers = _multipliers(raw)
    catalog: Catalog = {}
    for entry in raw["prices"]:
        price = Price.from_strings(
            entry["input"], entry["output"], entry.get("cachedInput"),
            entry.get("maxOutputTokens"), cache_write=entry.get("cacheWrite"),
            cache_write_1h=entry.get("cacheWrite1h"), multipliers=multipliers,
        )
        tier = entry.get("longContext")
        if tier is not None:
            price = replace(price, long_context_above=int(tier["aboveInputTokens"]),
                            long_context=Price.from_strings(
                                tier["input"], tier["output"], tier.get("cachedInput"),
                                entry.get("maxOutputTokens"),
                                cache_write=tier.get("cacheWrite"),
                                cache_write_1h=tier.get("cacheWrite1h"),
                                multipliers=multipliers))
        catalog[(entry["provider"], entry["model"])] = price
    return catalog


class PriceBook:
    """Answers 'what does this model cost on this provider?' for one config snapshot."""

    def __init__(
        self,
        catalog: Catalog,
        provider_types: dict[str, str],
        overrides: dict[tuple[str, str], Price],
    ) -> None:
        self._catalog = catalog
        self._provider_types = provider_types
        self._overrides = overrides

    def price(self, provider: str, model: str) -> Price | None:
        override = self._overrides.get((provider, model))
        if override is not None:
            return override
        kind = self._provider_types.get(provider)
        return self._catalog.get((kind, model)) if kind else None

    def catalog_models(self, provider_type: str) -> list[str]:
        return [model for (kind, model) in self._catalog if kind == provider_type]
