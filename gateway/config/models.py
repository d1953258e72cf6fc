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
    "AlertSettings",
    "AnomalySettings",
    "AnthropicProvider",
    "AzureDeployment",
    "AzureOpenAIProvider",
    "BedrockProvider",
    "Budget",
    "BudgetPeriod",
    "CircuitBreakerSettings",
    "CredentialRef",
    "GatewayConfig",
    "MockProvider",
    "ModelAlias",
    "ObservabilitySettings",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "PriceOverride",
    "ProviderConfig",
    "RateLimit",
    "RetrySettings",
    "ServerSettings",
    "StoreSettings",
    "Target",
    "Timeouts",
    "TracingSettings",
    "VertexProvider",
    "VirtualKeyConfig",
    "WebhookSettings",
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
    """Per-attempt timeouts, in seconds (each retry of a target gets its own)."""

    connect_seconds: float = Field(
        default=5.0, gt=0, le=300,
        description="connectSeconds bounds opening the TCP (and TLS) connection. Default: 5.",
    )
    first_byte_seconds: float = Field(
        default=120.0, gt=0, le=3600,
        description="firstByteSeconds bounds the wait from sending the request to the "
        "provider's first byte: the response headers, and for a stream its first frame. It "
        "also bounds every later silence while the body is read. Default: 120.",
    )
    total_seconds: float = Field(
        default=600.0, gt=0, le=7200,
        description="totalSeconds bounds the whole attempt, connecting to the last byte "
        "(streams included: a longer stream is ended with an error event). Default: 600.",
    )


class RetrySettings(_Model):
    """How a failing target is tried again before the route moves on to the next target.

    Only failures that may pass are retried (connection errors, timeouts, 429, 5xx, 529);
    a provider's 4xx never is. The delay before retry n (1, 2 …) is
    `min(maxDelayMs, baseDelayMs * 2**(n-1))` times a random factor in [0.5, 1), or the
    provider's `Retry-After` when that is longer; a `Retry-After` above `maxDelayMs` is not
    waited for (the next target is tried instead). A retry budget keeps retries from
    multiplying an outage: per provider and gateway process, retries in the last 10 seconds
    may not exceed `budgetRatio` of the requests sent to it, plus `budgetMinRetries`.
    """

    max_attempts: int = Field(
        default=2, ge=1, le=10,
        description="maxAttempts: tries of one target per request, the first included; 1 "
        "turns retries off. Default: 2.")
    base_delay_ms: int = Field(default=250, ge=0, le=60_000,
                               description="baseDelayMs: the first retry's delay. Default: 250.")
    max_delay_ms: int = Field(
        default=2_000, ge=0, le=300_000,
        description="maxDelayMs caps every delay, `Retry-After` included. Default: 2000.")
    budget_ratio: float = Field(
        default=0.2, ge=0, le=1,
        description="budgetRatio: retries allowed per request, over a 10-second window. "
        "Default: 0.2.")
    budget_min_retries: int = Field(
        default=3, ge=0, le=10_000,
        description="budgetMinRetries: retries always allowed per 10-second window, so a "
        "quiet provider can still be retried. Default: 3.")

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetrySettings:
        if self.base_delay_ms > self.max_delay_ms:
            raise ValueError("`baseDelayMs` must not exceed `maxDelayMs`")
        return self


class CircuitBreakerSettings(_Model):
    """A circuit breaker per (provider, model), shared by every gateway replica through the
    store: once open, the target is skipped at once (no request, no timeout) until
    `openSeconds` have passed; then up to `halfOpenProbes` requests probe it, and a success
    closes the breaker while a failure opens it again."""

    consecutive_failures: int = Field(
        default=5, ge=1, le=10_000,
        description="consecutiveFailures in a row open the breaker. Default: 5.")
    failure_ratio: float = Field(
        default=0.5, gt=0, le=1,
        description="failureRatio of failed requests in the window opens the breaker, once "
        "the window holds `minimumRequests`. Default: 0.5.")
    minimum_requests: int = Field(default=20, ge=1, le=1_000_000,
                                  description="minimumRequests: see `failureRatio`. Default: 20.")
    window_seconds: int = Field(default=30, ge=1, le=3600,
                                description="windowSeconds: the sliding window. Default: 30.")
    open_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="openSeconds: how long an open breaker skips its target. Default: 30.")
    half_open_probes: int = Field(
        default=1, ge=1, le=100,
        description="halfOpenProbes: requests let through at a time once `openSeconds` have "
        "passed. Default: 1.")


class _ProviderBase(_Model):
    name: Name
    models: tuple[str, ...] = Field(
        default=(),
        max_length=10_000,
        description="Models this provider serves. Empty: the price catalog's models for its type.",
    )
    timeouts: Timeouts = Timeouts()
    retry: RetrySettings | None = Field(
        default=RetrySettings(),
        description="retry: same-target retries. Unset: the defaults; null: no retries.")
    circuit_breaker: CircuitBreakerSettings | None = Field(
        default=CircuitBreakerSettings(),
        description="circuitBreaker: per (provider, model). Unset: the defaults; null: off.")


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


class BedrockProvider(_ProviderBase):
    """Amazon Bedrock's Converse / ConverseStream APIs (and InvokeModel for embeddings), signed
    with SigV4.

    Credentials: `accessKeyId` + `secretAccessKey` (+ `sessionToken`) references, or none at
    all to use the AWS default credential chain of the gateway's pod (environment, IRSA web
    identity, ECS/EC2 instance role)."""

    type: Literal["bedrock"]
    region: str = Field(
        min_length=1, max_length=32, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$",
        description="region is the AWS region requests are signed for, e.g. \"us-east-1\".",
    )
    base_url: str | None = Field(
        default=None, alias="baseURL", max_length=2048,
        description="baseURL overrides the endpoint (a VPC endpoint, a test server). Unset: "
        "https://bedrock-runtime.<region>.amazonaws.com",
    )
    access_key_id: CredentialRef | None = Field(default=None, alias="accessKeyId")
    secret_access_key: CredentialRef | None = Field(default=None, alias="secretAccessKey")
    session_token: CredentialRef | None = None

    @model_validator(mode="after")
    def _key_pair(self) -> BedrockProvider:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("`accessKeyId` and `secretAccessKey` must be set together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("`sessionToken` needs `accessKeyId` and `secretAccessKey`")
        return self


class VertexProvider(_ProviderBase):
    """Google Vertex AI: Gemini (`generateContent`) or Anthropic's Claude (`rawPredict`), with
    an OAuth token minted by google-auth.

    One entry speaks one publisher's API: `publisher: google` (Gemini and Google's embedding
    models, the default) or `publisher: anthropic` (Claude on Vertex). Declare two entries to
    serve both from one project."""

    type: Literal["vertex"]
    project: str = Field(min_length=1, max_length=64,
                         description="project is the Google Cloud project id.")
    region: str = Field(
        default="us-central1", min_length=1, max_length=32,
        description="region is the Vertex AI location, e.g. \"europe-west4\" or \"global\".",
    )
    publisher: Literal["google", "anthropic"] = "google"
    base_url: str | None = Field(
        default=None, alias="baseURL", max_length=2048,
        description="baseURL overrides the endpoint root (without /v1). Unset: "
        "https://<region>-aiplatform.googleapis.com (https://aiplatform.googleapis.com for "
        "`global`).",
    )
    service_account: CredentialRef | None = Field(
        default=None,
        description="serviceAccount: a service-account JSON key. Unset: Application Default "
        "Credentials of the gateway's pod (GOOGLE_APPLICATION_CREDENTIALS, workload "
        "identity, the metadata server).",
    )
    anthropic_version: str = Field(default="vertex-2023-10-16", min_length=1, max_length=64)


class AzureDeployment(_Model):
    """Which Azure deployment serves a base model name (the name callers and prices use)."""

    model: str = Field(min_length=1, max_length=256)
    deployment: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")


class AzureOpenAIProvider(_ProviderBase):
    """Azure OpenAI: OpenAI's wire format at
    `<baseURL>/openai/deployments/<deployment>/…?api-version=<apiVersion>`."""

    type: Literal["azure-openai"]
    base_url: str = Field(alias="baseURL", max_length=2048,
                          description="baseURL is the resource endpoint, "
                          "https://<resource>.openai.azure.com")
    api_version: str = Field(min_length=1, max_length=32)
    deployments: tuple[AzureDeployment, ...] = Field(min_length=1, max_length=256)
    api_key: CredentialRef | None = Field(
        default=None, description="apiKey is sent as the `api-key` header.")
    entra_token: CredentialRef | None = Field(
        default=None, alias="entraToken",
        description="entraToken: a Microsoft Entra ID access token (kept fresh by whatever "
        "writes the file), sent as `Authorization: Bearer`.",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> AzureOpenAIProvider:
        if self.api_key is not None and self.entra_token is not None:
            raise ValueError("at most one of `apiKey` or `entraToken` may be set")
        models = [d.model for d in self.deployments]
        if len(set(models)) != len(models):
            raise ValueError("`deployments` may not map the same `model` twice")
        return self


class MockProvider(_ProviderBase):
    """A built-in provider with deterministic replies, for demos and tests; no network."""

    type: Literal["mock"]
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    stream_chunk_words: int = Field(default=1, ge=1, le=1000)


ProviderConfig = Annotated[
    OpenAIProvider | OpenAICompatibleProvider | AnthropicProvider | BedrockProvider
    | VertexProvider | AzureOpenAIProvider | MockProvider,
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
    alert_thresholds_percent: tuple[int, ...] | None = Field(
        default=None, alias="alertThresholdsPercent", max_length=10,
        description="alertThresholdsPercent: percentages of the period's budget at which an "
        "alert fires, each once per period (e.g. [50, 80, 100]). Unset: "
        "`alerts.budgetThresholdsPercent`; empty: no budget alerts for this budget.",
    )

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> Budget:
        _check_thresholds(self.alert_thresholds_percent or (), "alertThresholdsPercent")
        return self


def _check_thresholds(values: tuple[int, ...], field: str) -> None:
    if any(not 1 <= v <= 1000 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"`{field}` must hold distinct whole percentages from 1 to 1000")


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
    log_bodies: bool = Field(
        default=False, alias="logBodies",
        description="logBodies: put this key's request and response bodies (truncated) in its "
        "decision-log lines. Off by default: prompts and completions are never logged.",
    )

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
    password_file: str | None = Field(
        default=None, max_length=4096,
        description="File holding the Redis password (a mounted Secret); never put it in `url`.",
    )
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


# --- observability and alerts -----------------------------------------------------------------


class TracingSettings(_Model):
    """OpenTelemetry export of request, upstream-attempt and store spans (OTLP over HTTP).

    Needs the `tracing` extra (`pip install tollgate[tracing]`); unset `observability.tracing`
    means no tracing at all, and then nothing of OpenTelemetry is even imported."""

    otlp_endpoint: str = Field(
        alias="otlpEndpoint", min_length=1, max_length=2048,
        description="otlpEndpoint: the OTLP/HTTP traces URL, e.g. "
        "http://otel-collector:4318/v1/traces.",
    )
    service_name: str = Field(default="tollgate-gateway", min_length=1, max_length=253)
    sample_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="sampleRatio: share of new traces recorded (a caller's sampled "
        "`traceparent` is always followed).",
    )


class ObservabilitySettings(_Model):
    tracing: TracingSettings | None = None


class WebhookSettings(_Model):
    """One alert receiver. `json` posts Tollgate's own alert document, `slack` a Slack incoming-
    webhook message, `pagerduty` a PagerDuty Events API v2 event (with a dedup_key, and a
    `resolve` when the condition ends)."""

    name: Name
    type: Literal["json", "slack", "pagerduty"]
    url_from: CredentialRef | None = Field(
        default=None, alias="urlFrom",
        description="urlFrom: where the webhook URL comes from (it is often a secret, as Slack's "
        "are). Required for `json` and `slack`; for `pagerduty` the default is "
        "https://events.pagerduty.com/v2/enqueue.",
    )
    routing_key_from: CredentialRef | None = Field(
        default=None, alias="routingKeyFrom",
        description="routingKeyFrom: the PagerDuty integration (routing) key; `pagerduty` only.",
    )
    kinds: tuple[Literal["budget_threshold", "budget_forecast", "spend_anomaly"], ...] = Field(
        default=(), max_length=3, description="kinds: alert kinds sent here; empty: all.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=6, ge=1, le=20)

    @model_validator(mode="after")
    def _credentials_fit_the_type(self) -> WebhookSettings:
        if self.type == "pagerduty" and self.routing_key_from is None:
            raise ValueError("`routingKeyFrom` is required for type 'pagerduty'")
        if self.type != "pagerduty" and self.url_from is None:
            raise ValueError(f"`urlFrom` is required for type '{self.type}'")
        if self.type != "pagerduty" and self.routing_key_from is not None:
            raise ValueError("`routingKeyFrom` may only be set for type 'pagerduty'")
        return self


class AnomalySettings(_Model):
    """Built-in cost-anomaly detection: each key's and customer's spend rate over the last
    `windowMinutes`, against the same hours of the previous weeks (median and MAD)."""

    enabled: bool = True
    window_minutes: int = Field(default=5, ge=1, le=60)
    history_weeks: int = Field(default=4, ge=1, le=12)
    ratio: float = Field(
        default=3.0, ge=1.5, le=100.0,
        description="ratio: how many times the upper end of the normal range the recent rate "
        "must reach to count as a spike.")
    min_usd_per_hour: USD = Field(
        default="1", alias="minUSDPerHour",
        description="minUSDPerHour: spend rates below this never count as a spike.")


class AlertSettings(_Model):
    webhooks: tuple[WebhookSettings, ...] = Field(default=(), max_length=16)
    budget_thresholds_percent: tuple[int, ...] = Field(
        default=(50, 80, 100), alias="budgetThresholdsPercent", max_length=10,
        description="budgetThresholdsPercent: default alert thresholds for every budget.")
    cooldown_seconds: int = Field(
        default=3600, ge=0, le=7 * 86_400,
        description="cooldownSeconds: after a spend-anomaly alert for a key or customer, no "
        "new one for it for this long (across every gateway replica).")
    evaluation_interval_seconds: float = Field(default=60.0, ge=0.05, le=3600)
    anomaly: AnomalySettings = AnomalySettings()

    @model_validator(mode="after")
    def _checks(self) -> AlertSettings:
        _check_thresholds(self.budget_thresholds_percent, "budgetThresholdsPercent")
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError("`webhooks`: every webhook must have a distinct `name`")
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
    observability: ObservabilitySettings = ObservabilitySettings()
    alerts: AlertSettings = AlertSettings()

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
