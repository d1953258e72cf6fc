"""The GatewayConfig contract: the one document the operator renders and the gateway serves.

Every model is frozen and rejects unknown fields, so a typo fails at load time with a message
naming the field path, never on a live request. Field names are camelCase on the wire (the same
spelling as the custom resources); Python code uses snake_case attributes.

No secret material lives here: provider API keys are *references* (an environment variable or a
file path), and virtual keys are stored only as the SHA-256 hash of their bearer token.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tollgate.gateway.money import parse_usd, per_million_to_picos_per_token

__all__ = [
    "API_VERSION",
    "KIND",
    "AnthropicProvider",
    "Budget",
    "BudgetPeriod",
    "CredentialRef",
    "GatewayConfig",
    "MockProvider",
    "ModelAlias",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "PriceOverride",
    "ProviderConfig",
    "RateLimit",
    "ServerSettings",
    "StoreSettings",
    "Target",
    "Timeouts",
    "VirtualKeyConfig",
]

API_VERSION = "tollgate.dev/v1alpha1"
KIND = "GatewayConfig"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "must be 1-63 lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


def _check_usd(value: str) -> str:
    parse_usd(value)
    return value


def _check_price(value: str) -> str:
    per_million_to_picos_per_token(value)
    return value


Name = Annotated[str, AfterValidator(_check_name)]
USD = Annotated[str, AfterValidator(_check_usd)]
PricePerMillion = Annotated[str, AfterValidator(_check_price)]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )


# --- providers -------------------------------------------------------------------------------


class CredentialRef(_Model):
    """Where a provider's API key comes from: exactly one of an environment variable or a file.

    The file form is how Kubernetes Secrets arrive (a mounted volume); the file is re-read on
    every config reload, so a rotated Secret takes effect without a restart.
    """

    env: str | None = Field(default=None, max_length=253)
    file: str | None = Field(default=None, max_length=4096)

    @model_validator(mode="after")
    def _exactly_one(self) -> CredentialRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("exactly one of `env` or `file` must be set")
        return self


class Timeouts(_Model):
    """Per-attempt timeouts, in seconds."""

    connect_seconds: float = Field(default=5.0, gt=0, le=300)
    first_byte_seconds: float = Field(default=120.0, gt=0, le=3600)
    total_seconds: float = Field(default=600.0, gt=0, le=7200)


class _ProviderBase(_Model):
    name: Name
    models: tuple[str, ...] = Field(
        default=(),
        max_length=10_000,
        description="Models this provider serves. Empty: the price catalog's models for its type.",
    )
    timeouts: Timeouts = Timeouts()


class OpenAIProvider(_ProviderBase):
    type: Literal["openai"]
    base_url: str = Field(default="https://api.openai.com/v1", alias="baseURL", max_length=2048)
    api_key: CredentialRef | None = None
    organization: str | None = Field(default=None, max_length=256)


class OpenAICompatibleProvider(_ProviderBase):
    """Any server speaking OpenAI's chat completions API: vLLM, Ollama, Groq, Together …"""

    type: Literal["openai-compatible"]
    base_url: str = Field(alias="baseURL", max_length=2048)
    api_key: CredentialRef | None = None


class AnthropicProvider(_ProviderBase):
    """Anthropic's Messages API (api.anthropic.com, or an endpoint speaking the same API)."""

    type: Literal["anthropic"]
    base_url: str = Field(
        default="https://api.anthropic.com", alias="baseURL", max_length=2048,
        description="baseURL is the API root, without `/v1`. Default: https://api.anthropic.com",
    )
    api_key: CredentialRef | None = Field(
        default=None, description="apiKey: where the Anthropic API key comes from; it is sent "
        "as `x-api-key`.",
    )
    anthropic_version: str = Field(
        default="2023-06-01", min_length=1, max_length=64,
        description="anthropicVersion is sent as the `anthropic-version` header.",
    )


class MockProvider(_ProviderBase):
    """A built-in provider with deterministic replies, for demos and tests; no network."""

    type: Literal["mock"]
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    stream_chunk_words: int = Field(default=1, ge=1, le=1000)


ProviderConfig = Annotated[
    OpenAIProvider | OpenAICompatibleProvider | AnthropicProvider | MockProvider,
    Field(discriminator="type"),
]


# --- routing ---------------------------------------------------------------------------------


class Target(_Model):
    """One place a request can be served: a configured provider and the model name it knows."""

    provider: Name
    model: str = Field(min_length=1, max_length=256)


class ModelAlias(_Model):
    """A public model name mapped to an ordered list of targets (e.g. `default-chat`)."""

    name: str = Field(min_length=1, max_length=256)
    targets: tuple[Target, ...] = Field(min_length=1, max_length=32)


class PriceOverride(_Model):
    """Replaces the catalog price of one provider's model (USD per million tokens)."""

    provider: Name
    model: str = Field(min_length=1, max_length=256)
    input_per_million_usd: PricePerMillion = Field(alias="inputPerMillionUSD")
    output_per_million_usd: PricePerMillion = Field(alias="outputPerMillionUSD")
    cached_input_per_million_usd: PricePerMillion | None = Field(
        default=None, alias="cachedInputPerMillionUSD"
    )


# --- governance ------------------------------------------------------------------------------

BudgetPeriod = Literal["daily", "weekly", "monthly", "total"]


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {value!r} (e.g. 'UTC', 'Europe/Berlin')") from None
    return value


class Budget(_Model):
    """A spend cap per calendar period (`total` never resets), in USD as a decimal string."""

    max_usd: USD = Field(alias="maxUSD")
    period: BudgetPeriod = "monthly"
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        default="UTC", max_length=64
    )
    on_exceeded_in_stream: Literal["finish", "stop"] = Field(
        default="finish",
        description="When a stream's running cost passes the budget: `finish` the stream, or "
        "`stop` it with finish_reason 'length'.",
    )


class RateLimit(_Model):
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)


class CustomerConfig(_Model):
    """Limits shared by every key with the same `customerId`."""

    id: Name
    budget: Budget | None = None
    rate_limit: RateLimit | None = None


class VirtualKeyConfig(_Model):
    id: Name
    customer_id: str | None = Field(default=None, max_length=253)
    token_sha256: str = Field(alias="tokenSHA256", description="Hex SHA-256 of the bearer token.")
    previous_token_sha256: str | None = Field(
        default=None,
        alias="previousTokenSHA256",
        description="A second accepted hash, for rotation overlap windows.",
    )
    enabled: bool = True
    expires_at: datetime | None = None
    allowed_providers: tuple[Name, ...] = Field(default=(), max_length=64)
    allowed_models: tuple[str, ...] = Field(default=(), max_length=1024)
    fallbacks: tuple[Target, ...] = Field(default=(), max_length=32)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)
    budget: Budget | None = None
    rate_limit: RateLimit | None = None
    on_store_unavailable: Literal["allow", "deny"] = "allow"

    @model_validator(mode="after")
    def _hashes_are_hex(self) -> VirtualKeyConfig:
        for field, value in (
            ("tokenSHA256", self.token_sha256),
            ("previousTokenSHA256", self.previous_token_sha256),
        ):
            if value is not None and not _SHA256_HEX.match(value):
                raise ValueError(f"`{field}` must be 64 lowercase hex characters (a SHA-256)")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("`expiresAt` must carry a timezone, e.g. 2027-01-01T00:00:00Z")
        return self


# --- process-wide settings -------------------------------------------------------------------


class StoreSettings(_Model):
    """Where shared state lives: `redis://…` for many replicas, or the embedded file store."""

    url: str | None = Field(default=None, max_length=2048)
    path: str = Field(default=".tollgate/state.db", max_length=4096)
    lease_seconds: int = Field(
        default=3600, ge=10, le=86_400,
        description="A budget hold lapses after this long if its gateway died before settling; "
        "must outlast every provider's `timeouts.totalSeconds`.",
    )
    ledger_retention_days: int = Field(default=400, ge=1, le=3650)
    ledger_max_records: int = Field(default=1_000_000, ge=1000, le=1_000_000_000)


class ServerSettings(_Model):
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    admin_token_sha256: str | None = Field(
        default=None, alias="adminTokenSHA256",
        description="SHA-256 of the admin API's bearer token; unset disables /admin.",
    )

    @model_validator(mode="after")
    def _admin_hash_is_hex(self) -> ServerSettings:
        if self.admin_token_sha256 is not None and not _SHA256_HEX.match(
            self.admin_token_sha256
        ):
            raise ValueError("`adminTokenSHA256` must be 64 lowercase hex characters")
        return self


# --- the document ----------------------------------------------------------------------------


class GatewayConfig(_Model):
    api_version: Literal["tollgate.dev/v1alpha1"]
    kind: Literal["GatewayConfig"]
    revision: str | None = Field(default=None, max_length=128)
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    providers: tuple[ProviderConfig, ...] = Field(default=(), max_length=256)
    models: tuple[ModelAlias, ...] = Field(default=(), max_length=10_000)
    pricing: tuple[PriceOverride, ...] = Field(default=(), max_length=10_000)
    customers: tuple[CustomerConfig, ...] = Field(default=(), max_length=100_000)
    virtual_keys: tuple[VirtualKeyConfig, ...] = Field(default=(), max_length=100_000)

    @model_validator(mode="after")
    def _cross_references(self) -> GatewayConfig:
        """Names are unique and every reference points at something declared."""
        problems: list[str] = []
        providers = {p.name for p in self.providers}
        _unique("providers", [p.name for p in self.providers], problems)
        _unique("models", [m.name for m in self.models], problems)
        _unique("customers", [c.id for c in self.customers], problems)
        _unique("virtualKeys", [k.id for k in self.virtual_keys], problems)
        owner_of_hash: dict[str, str] = {}
        for i, key in enumerate(self.virtual_keys):
            for field, value in (("tokenSHA256", key.token_sha256),
                                 ("previousTokenSHA256", key.previous_token_sha256)):
                if value is None:
                    continue
                owner = owner_of_hash.setdefault(value, key.id)
                if owner != key.id or (field == "previousTokenSHA256"
                                       and value == key.token_sha256):
                    problems.append(
                        f"virtualKeys[{i}].{field}: key {key.id!r} shares its token hash with "
                        f"key {owner!r}; two keys share the same token hash"
                    )
        for i, alias in enumerate(self.models):
            for j, target in enumerate(alias.targets):
                if target.provider not in providers:
                    problems.append(
                        f"models[{i}].targets[{j}].provider: unknown provider {target.provider!r}"
                    )
        for i, provider in enumerate(self.providers):
            if provider.timeouts.total_seconds > self.store.lease_seconds:
                problems.append(
                    f"providers[{i}].timeouts.totalSeconds: must not exceed "
                    f"`store.leaseSeconds` ({self.store.lease_seconds}), or a long request "
                    "would outlive its budget hold"
                )
        for i, price in enumerate(self.pricing):
            if price.provider not in providers:
                problems.append(f"pricing[{i}].provider: unknown provider {price.provider!r}")
        for i, key in enumerate(self.virtual_keys):
            for name in key.allowed_providers:
                if name not in providers:
                    problems.append(
                        f"virtualKeys[{i}].allowedProviders: unknown provider {name!r}"
                    )
            for j, target in enumerate(key.fallbacks):
                if target.provider not in providers:
                    problems.append(
                        f"virtualKeys[{i}].fallbacks[{j}].provider: "
                        f"unknown provider {target.provider!r}"
                    )
                elif key.allowed_providers and target.provider not in key.allowed_providers:
                    problems.append(
                        f"virtualKeys[{i}].fallbacks[{j}].provider: {target.provider!r} "
                        "must be listed in `allowedProviders`"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _unique(field: str, names: list[str], problems: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"{field}: name {name!r} is declared more than once")
        seen.add(name)
