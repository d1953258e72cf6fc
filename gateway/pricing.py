"""Price catalog: shipped data file plus per-provider overrides from config.

Prices are looked up by (provider name, model) first — an override in GatewayConfig.pricing —
then by (provider type, model) in the catalog shipped with the package. Nothing here needs the
network: the catalog is package data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from tollgate.gateway.money import Micros, per_million_to_picos_per_token, picos_to_micros

__all__ = ["Price", "PriceBook", "Usage", "load_catalog"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one request, normalised to OpenAI's accounting.

    `input_tokens` includes `cached_input_tokens`; `output_tokens` includes `reasoning_tokens`.
    Adapters for providers that count differently convert into this shape exactly once.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Price:
    """Integer pico-dollars per token for each token class."""

    input: int
    cached_input: int
    output: int
    max_output_tokens: int | None = None

    @classmethod
    def from_strings(cls, input: str, output: str, cached_input: str | None,
                     max_output_tokens: int | None = None) -> Price:
        picos_in = per_million_to_picos_per_token(input)
        return cls(
            input=picos_in,
            output=per_million_to_picos_per_token(output),
            cached_input=(
                per_million_to_picos_per_token(cached_input) if cached_input else picos_in
            ),
            max_output_tokens=max_output_tokens,
        )

    def cost(self, usage: Usage) -> Micros:
        """Each token priced once, in exactly one class; rounded once, half up."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        picos = (
            (usage.input_tokens - cached) * self.input
            + cached * self.cached_input
            + usage.output_tokens * self.output
        )
        return picos_to_micros(picos)


Catalog = dict[tuple[str, str], Price]


def load_catalog() -> Catalog:
    """Read the packaged catalog (data/prices.json) into {(provider type, model): Price}."""
    raw = json.loads(
        resources.files("tollgate.gateway").joinpath("data/prices.json").read_text("utf-8")
    )
    catalog: Catalog = {}
    for entry in raw["prices"]:
        catalog[(entry["provider"], entry["model"])] = Price.from_strings(
            entry["input"], entry["output"], entry.get("cachedInput"),
            entry.get("maxOutputTokens"),
        )
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
