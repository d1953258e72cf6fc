"""A served configuration: the validated GatewayConfig plus everything precomputed from it.

Built once per config load (never per request): keys indexed by token hash, provider adapters,
model → providers index, aliases, prices. Immutable once built; a reload builds a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tollgate.gateway.config.models import (
    CredentialRef,
    CustomerConfig,
    GatewayConfig,
    StoreSettings,
    Target,
    VirtualKeyConfig,
)
from tollgate.gateway.money import parse_usd
from tollgate.gateway.pricing import Catalog, Price, PriceBook
from tollgate.gateway.providers import registry
from tollgate.gateway.providers.base import Provider
from tollgate.gateway.store.base import Store
from tollgate.gateway.store.outbox import Outbox
from tollgate.gateway.transport import Transport

__all__ = ["KeyPolicy", "Snapshot", "StoreOpener", "build_snapshot", "credential_files"]


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """One virtual key, with its allow-lists turned into sets (None: everything allowed)."""

    config: VirtualKeyConfig
    allowed_models: frozenset[str] | None
    allowed_providers: frozenset[str] | None
    expires_at: float | None
    fallback_models: frozenset[str]
    customer: CustomerConfig | None = None
    budget_limit_micros: int | None = None
    customer_budget_limit_micros: int | None = None

    @property
    def governed(self) -> bool:
        """Does any budget or rate limit apply (so admission needs the store)?"""
        customer = self.customer
        return bool(
            self.config.budget or self.config.rate_limit
            or (customer is not None and (customer.budget or customer.rate_limit))
        )

    @property
    def id(self) -> str:
        return self.config.id

    def allows_provider(self, provider: str) -> bool:
        return self.allowed_providers is None or provider in self.allowed_providers


@dataclass(frozen=True)
class Snapshot:
    config: GatewayConfig
    revision: str
    keys_by_hash: dict[str, KeyPolicy]
    providers: dict[str, Provider]
    aliases: dict[str, tuple[Target, ...]]
    model_index: dict[str, tuple[Target, ...]]
    prices: PriceBook
    store: Store
    outbox: Outbox
    loaded_at: datetime = field(default_factory=datetime.now)

    @property
    def max_body_bytes(self) -> int:
        return self.config.server.max_body_bytes


def _key_policy(key: VirtualKeyConfig, customers: dict[str, CustomerConfig]) -> KeyPolicy:
    customer = customers.get(key.customer_id) if key.customer_id else None
    return KeyPolicy(
        config=key,
        allowed_models=frozenset(key.allowed_models) if key.allowed_models else None,
        allowed_providers=frozenset(key.allowed_providers) if key.allowed_providers else None,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
        fallback_models=frozenset(t.model for t in key.fallbacks),
        customer=customer,
        budget_limit_micros=parse_usd(key.budget.max_usd) if key.budget else None,
        customer_budget_limit_micros=(
            parse_usd(customer.budget.max_usd) if customer and customer.budget else None
        ),
    )


class StoreOpener(Protocol):
    def __call__(self, settings: StoreSettings) -> tuple[Store, Outbox]: ...


def build_snapshot(config: GatewayConfig, revision: str, transport: Transport,
                   catalog: Catalog, open_store: StoreOpener) -> Snapshot:
    """Everything a request needs, precomputed from a validated config."""
    provider_types = {p.name: p.type for p in config.providers}
    overrides = {
        (o.provider, o.model): Price.from_strings(
            o.input_per_million_usd, o.output_per_million_usd, o.cached_input_per_million_usd
        )
        for o in config.pricing
    }
    prices = PriceBook(catalog, provider_types, overrides)
    providers: dict[str, Provider] = {}
    for entry in config.providers:
        catalog_models = tuple(prices.catalog_models(entry.type))
        providers[entry.name] = registry.build(entry, transport, catalog_models)

    model_index: dict[str, list[Target]] = {}
    for name, provider in providers.items():
        for model in provider.served_models():
            model_index.setdefault(model, []).append(Target(provider=name, model=model))

    customers = {c.id: c for c in config.customers}
    keys: dict[str, KeyPolicy] = {}
    for key in config.virtual_keys:
        policy = _key_policy(key, customers)
        keys[key.token_sha256] = policy
        if key.previous_token_sha256:
            keys[key.previous_token_sha256] = policy
    # An alias may reuse a served model's name (a model group); the alias wins.
    aliases = {alias.name: alias.targets for alias in config.models}
    store, outbox = open_store(config.store)
    return Snapshot(
        config=config,
        revision=revision,
        keys_by_hash=keys,
        providers=providers,
        aliases=aliases,
        model_index={m: tuple(t) for m, t in model_index.items()},
        prices=prices,
        store=store,
        outbox=outbox,
    )


def credential_files(config: GatewayConfig) -> list[str]:
    """Files the snapshot read secrets from: a change to one triggers a reload too."""
    files = []
    for provider in config.providers:
        for name in type(provider).model_fields:  # apiKey, serviceAccount, accessKeyId …
            ref = getattr(provider, name)
            if isinstance(ref, CredentialRef) and ref.file:
                files.append(ref.file)
    return files
