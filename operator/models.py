"""VirtualKey and ProviderCredential (group tollgate.dev, version v1alpha1): the source of the CRDs.

These pydantic models are written once and used twice: `crdgen` turns them into the structural
OpenAPI schemas of the CustomResourceDefinitions, and `validate`/`render` parse custom resources
with them. Every `Field(description=...)` is what `kubectl explain` prints.

A `Rule` is one `x-kubernetes-validations` CEL rule together with its Python twin, so the API
server (CEL) and the offline `tollgate validate` (Python) enforce the same thing with the same
message; a test runs every example manifest through both and compares. Rules are declared on a
field (`Annotated[..., Rule(...)]`) or on a model (`__rules__`), as in the CRD.

Conventions (STYLE.md, "CRD and status conventions"): camelCase fields with units in the name,
CamelCase values from fixed sets, lists of named subobjects instead of maps, maxItems on every
list and maxLength on every string, unions with a `type` discriminator and one CEL rule per
member, status with `observedGeneration` and `conditions` keyed by `type`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = [
    "API_VERSION",
    "DEFAULT_ACCESS_KEY_ID_KEY",
    "GROUP",
    "VERSION",
    "AWSBedrockSettings",
    "AnthropicSettings",
    "AzureAuthentication",
    "AzureDeployment",
    "AzureOpenAISettings",
    "Budget",
    "BudgetPeriod",
    "Condition",
    "ConditionStatus",
    "Fallback",
    "GCPVertexAISettings",
    "KeyUsage",
    "ListType",
    "MetadataEntry",
    "OnExceededInStream",
    "OnStoreUnavailable",
    "OpenAISettings",
    "ProviderCredentialSpec",
    "ProviderCredentialStatus",
    "ProviderTimeouts",
    "ProviderType",
    "RateLimit",
    "Rule",
    "SecretKeyRef",
    "Spend",
    "VertexPublisher",
    "VirtualKeySpec",
    "VirtualKeyStatus",
]

GROUP = "tollgate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Patterns shared by the schema (RE2 on the API server) and pydantic (Rust regex): keep them
# to the common subset — no look-arounds, no escapes that differ.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
USD_DECIMAL = r"^[0-9]{1,12}([.][0-9]{1,6})?$"
HTTP_URL = r"^https?://[^/ ?#]+([/?#][^ ]*)?$"
CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

NAME_MAX = 63
"""Longest name of a VirtualKey or ProviderCredential (a label value, like a Service name)."""


# --- the two markers crdgen reads -----------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One CEL rule (`x-kubernetes-validations`) and the Python predicate that mirrors it.

    `check` receives what CEL calls `self`: the model instance for a model rule, the value for a
    field rule; it is only called when the value is set. Messages follow the API style.
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None
    reason: str | None = None

    def as_crd(self) -> dict[str, str]:
        rule = {"rule": self.cel, "message": self.message}
        if self.field_path:
            rule["fieldPath"] = self.field_path
        if self.reason:
            rule["reason"] = self.reason
        return rule

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.setdefault("x-kubernetes-validations", []).append(self.as_crd())
        return schema


@dataclass(frozen=True)
class ListType:
    """`x-kubernetes-list-type` (and map keys) of a list field; duplicates are rejected."""

    type: str
    map_keys: tuple[str, ...] = ()

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["x-kubernetes-list-type"] = self.type
        if self.map_keys:
            schema["x-kubernetes-list-map-keys"] = list(self.map_keys)
        return schema


def _matches(pattern: str) -> Callable[[Any], bool]:
    compiled = re.compile(pattern)
    return lambda value: compiled.search(value) is not None


class _Model(BaseModel):
    """Strict like the API server: no type coercion, no unknown fields, camelCase only."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
    )

    __rules__: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.__rules__:
            target["x-kubernetes-validations"] = [rule.as_crd() for rule in cls.__rules__]
        return schema


# --- fixed sets of values (CamelCase, chosen once) ------------------------------------------


class ProviderType(StrEnum):
    """The kind of upstream API a ProviderCredential reaches."""

    OPENAI = "OpenAI"
    ANTHROPIC = "Anthropic"
    AWS_BEDROCK = "AWSBedrock"
    GCP_VERTEX_AI = "GCPVertexAI"
    AZURE_OPENAI = "AzureOpenAI"
    OPENAI_COMPATIBLE = "OpenAICompatible"


class VertexPublisher(StrEnum):
    """Whose models a Vertex AI credential calls, and so which API it speaks."""

    GOOGLE = "Google"
    ANTHROPIC = "Anthropic"


class AzureAuthentication(StrEnum):
    """What the Secret entry of an Azure OpenAI credential holds."""

    API_KEY = "APIKey"
    ENTRA_ID_TOKEN = "EntraIDToken"


class BudgetPeriod(StrEnum):
    """How often a budget starts again from zero."""

    DAILY = "Daily"
    WEEKLY = "Weekly"
    MONTHLY = "Monthly"
    TOTAL = "Total"


class OnExceededInStream(StrEnum):
    """What happens to a streaming response that passes the budget while it runs."""

    FINISH = "Finish"
    STOP = "Stop"


class OnStoreUnavailable(StrEnum):
    """Whether requests are served while the shared state store cannot be reached."""

    ALLOW = "Allow"
    DENY = "Deny"


class ConditionStatus(StrEnum):
    """The status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# --- shared building blocks -----------------------------------------------------------------


class SecretKeyRef(_Model):
    """A reference to one key of a Secret in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="name is the name of the Secret, in the namespace of this object.",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
        description="key is the entry of the Secret's `data` that holds the value.",
    )


ObjectName = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=DNS_SUBDOMAIN)]
"""The name of a ProviderCredential, as written in a VirtualKey."""

ModelName = Annotated[str, Field(min_length=1, max_length=256)]


# --- VirtualKey -----------------------------------------------------------------------------


class Budget(_Model):
    """A spending cap for one period; requests are rejected once it would be passed."""

    max_usd: Annotated[
        str,
        Rule(
            cel=f"self.matches('{USD_DECIMAL}')",
            message="`maxUSD` must be a non-negative decimal string with at most 6 decimal "
            "places, such as '12000' or '12.50'",
            check=_matches(USD_DECIMAL),
        ),
    ] = Field(
        alias="maxUSD",
        min_length=1,
        max_length=19,
        description=(
            "maxUSD is the most this key may spend in one budget period, in US dollars, as a "
            "decimal string with at most 6 decimal places (for example \"12000\" or \"12.50\"); "
            "a string because money is exact. A request is rejected when the period's spend plus "
            "the amounts reserved by requests in flight would pass it. \"0\" blocks every paid "
            "request."
        ),
    )
    period: BudgetPeriod = Field(
        default=BudgetPeriod.MONTHLY,
        description=(
            "period is how often the budget starts again from zero: Daily, Weekly (weeks start "
            "on Monday), Monthly or Total (never). Periods begin at midnight in `timezone`. "
            "Default: Monthly."
        ),
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z][-A-Za-z0-9_+/]*$",
        description=(
            "timezone is the IANA time zone whose midnight starts a period, for example "
            "\"Europe/Berlin\". Default: \"UTC\"."
        ),
    )
    on_exceeded_in_stream: OnExceededInStream = Field(
        default=OnExceededInStream.FINISH,
        description=(
            "onExceededInStream decides what happens to a streaming response that passes the "
            "budget while it runs: Finish lets it end normally (the overrun is charged), Stop "
            "ends it at once. Default: Finish."
        ),
    )


class RateLimit(_Model):
    """Request, token and concurrency limits; at least one must be set."""

    __rules__ = (
        Rule(
            cel="has(self.requestsPerMinute) || has(self.tokensPerMinute) || "
            "has(self.maxConcurrent)",
            message="at least one of `requestsPerMinute`, `tokensPerMinute` or `maxConcurrent` "
            "must be set",
            check=lambda r: (
                r.requests_per_minute is not None
                or r.tokens_per_minute is not None
                or r.max_concurrent is not None
            ),
        ),
    )

    requests_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description=(
            "requestsPerMinute is the most requests this key may start in any 60-second window. "
            "Unset: no request limit."
        ),
    )
    tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000_000,
        description=(
            "tokensPerMinute is the most tokens (input plus output) this key may use in any "
            "60-second window; a request is admitted on an estimate and settled on the "
            "provider's reported usage. Unset: no token limit."
        ),
    )
    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description=(
            "maxConcurrent is the most requests of this key in flight at once, across every "
            "gateway replica. Unset: no concurrency limit."
        ),
    )


class Fallback(_Model):
    """One step of the fallback chain: a ProviderCredential and the model name it serves."""

    provider: ObjectName = Field(
        description=(
            "provider is the name of a ProviderCredential in this namespace (or in the "
            "operator's shared credentials namespace)."
        ),
    )
    model: ModelName = Field(
        description="model is the model name as that provider knows it, e.g. \"gpt-4o\".",
    )


class MetadataEntry(_Model):
    """A billing or attribution label copied onto this key's usage records."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
        description="name is the label's name, e.g. \"billingCode\" or \"costCenter\".",
    )
    value: str = Field(
        max_length=256,
        description="value is the label's value, e.g. \"ACME-LLM-01\".",
    )


class VirtualKeySpec(_Model):
    """The desired state of a VirtualKey: who it belongs to and what it may do."""

    __rules__ = (
        Rule(
            # A conditional, not `!has(...) || ...`: cel-python evaluates both sides of `||`
            # and its error values grow exponentially with the list (the API server's CEL is
            # fine either way).
            cel="has(self.allowedProviders) && has(self.fallbacks) ? "
            "self.fallbacks.all(f, f.provider in self.allowedProviders) : true",
            message="every `fallbacks[].provider` must be listed in `allowedProviders` when "
            "`allowedProviders` is set",
            check=lambda s: (
                s.allowed_providers is None
                or s.fallbacks is None
                or all(f.provider in s.allowed_providers for f in s.fallbacks)
            ),
            field_path=".fallbacks",
        ),
        Rule(
            cel="!has(self.tokenSecretRef) || !has(self.tokenSHA256)",
            message="`tokenSecretRef` and `tokenSHA256` may not both be set",
            check=lambda s: s.token_secret_ref is None or s.token_sha256 is None,
            field_path=".tokenSHA256",
            reason="FieldValueForbidden",
        ),
    )

    customer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description=(
            "customerId names the customer this key is billed to, e.g. \"acme_corp\"; usage "
            "records, metrics and `kubectl get vk` show it. Several keys may share one customer."
        ),
    )
    budget: Budget | None = Field(
        default=None,
        description=(
            "budget caps this key's spend per period. Unset: no budget (spend is still "
            "recorded). Example: {maxUSD: \"12000\", period: Monthly}."
        ),
    )
    rate_limit: RateLimit | None = Field(
        default=None,
        description=(
            "rateLimit caps this key's request rate, token rate and concurrency. Unset: no "
            "limits. Example: {requestsPerMinute: 600, tokensPerMinute: 400000}."
        ),
    )
    allowed_providers: Annotated[
        tuple[ObjectName, ...] | None, ListType("set")
    ] = Field(
        default=None,
        min_length=1,
        max_length=64,
        description=(
            "allowedProviders lists the ProviderCredentials (by name) this key may use. Unset: "
            "every ProviderCredential in this namespace and in the shared credentials namespace."
        ),
    )
    allowed_models: Annotated[tuple[ModelName, ...] | None, ListType("set")] = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description=(
            "allowedModels lists the model names a caller may request with this key. Unset: "
            "every model its providers serve."
        ),
    )
    fallbacks: Annotated[
        tuple[Fallback, ...] | None,
        ListType("atomic"),
        Rule(
            cel="self.all(f, self.exists_one(g, g.provider == f.provider && g.model == f.model))",
            message="`fallbacks` may not list the same `provider` and `model` twice",
            check=lambda chain: len({(f.provider, f.model) for f in chain}) == len(chain),
        ),
    ] = Field(
        default=None,
        min_length=1,
        max_length=32,
        description=(
            "fallbacks is the ordered chain tried when a request names one of its models: the "
            "gateway starts at that entry and moves down the list on timeouts, 429 and 5xx "
            "answers. Example: [{provider: openai, model: gpt-4o}, {provider: anthropic, model: "
            "claude-sonnet-4-6}]."
        ),
    )
    metadata: Annotated[tuple[MetadataEntry, ...] | None, ListType("map", ("name",))] = Field(
        default=None,
        max_length=64,
        description=(
            "metadata holds billing labels copied onto every usage record of this key, as a "
            "list of {name, value}. Example: [{name: billingCode, value: ACME-LLM-01}]."
        ),
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "tokenSecretRef points at a Secret entry holding this key's bearer token, when you "
            "supply the token yourself. Unset (and `tokenSHA256` unset): the operator generates "
            "a random token into the Secret `tollgate-vk-<name>` (entry `token`), owned by this "
            "VirtualKey. The gateway only ever sees the token's SHA-256."
        ),
    )
    token_sha256: str | None = Field(
        default=None,
        alias="tokenSHA256",
        min_length=64,
        max_length=64,
        pattern=r"^[0-9a-f]{64}$",
        description=(
            "tokenSHA256 is the lowercase hex SHA-256 of the bearer token, for GitOps "
            "repositories that keep tokens out of git (`tollgate hash-key` prints it). May not "
            "be set together with `tokenSecretRef`."
        ),
    )
    enabled: bool = Field(
        default=True,
        description="enabled set to false rejects every request of this key. Default: true.",
    )
    expires_at: datetime | None = Field(
        default=None,
        description=(
            "expiresAt is the RFC 3339 time after which this key is rejected, e.g. "
            "\"2027-01-01T00:00:00Z\". Unset: never expires."
        ),
    )
    on_store_unavailable: OnStoreUnavailable = Field(
        default=OnStoreUnavailable.ALLOW,
        description=(
            "onStoreUnavailable decides whether requests are served while the shared state "
            "store (budgets, rate limits) cannot be reached: Allow serves them unmetered, Deny "
            "rejects them. Default: Allow."
        ),
    )


class Spend(_Model):
    """Spend in the current budget period, as published by the gateway (throttled)."""

    period: str | None = Field(
        default=None,
        max_length=32,
        description=(
            "period identifies the current budget period, e.g. \"2026-11\" (Monthly), "
            "\"2026-W47\" (Weekly), \"2026-11-27\" (Daily) or \"total\"."
        ),
    )
    spent_usd: str | None = Field(
        default=None, alias="spentUSD", max_length=32,
        description="spentUSD is the settled spend in this period, in US dollars.",
    )
    remaining_usd: str | None = Field(
        default=None, alias="remainingUSD", max_length=32,
        description="remainingUSD is maxUSD minus spentUSD and reservedUSD, never below zero.",
    )
    reserved_usd: str | None = Field(
        default=None, alias="reservedUSD", max_length=32,
        description="reservedUSD is held by requests still in flight.",
    )
    forecast_exhausted_at: str | None = Field(
        default=None, alias="forecastExhaustedAt", max_length=32,
        description=(
            "forecastExhaustedAt is when the budget runs out at the current spend rate (RFC "
            "3339, whole hours), set only when that is before the period ends."
        ),
    )


class KeyUsage(_Model):
    """Request counters of the current budget period, as published by the gateway. Each
    gateway replica counts what it serves itself; the publishing replica adds its own counts
    to what it found when it took over, so with several replicas these are a lower bound."""

    requests: int | None = Field(
        default=None, ge=0,
        description="requests is the number of requests served in this period (as counted by "
        "the publishing gateway replicas).",
    )
    rejected_requests: int | None = Field(
        default=None, ge=0,
        description="rejectedRequests counts requests refused by budget, rate limit or policy.",
    )
    last_used_at: datetime | None = Field(
        default=None,
        description="lastUsedAt is when this key last made a request, to within the status "
        "publishing interval.",
    )


class Condition(_Model):
    """One aspect of the object's state (metav1.Condition)."""

    type: str = Field(
        min_length=1, max_length=316, pattern=CONDITION_TYPE,
        description=(
            "type of the condition in CamelCase: Ready, BudgetExceeded, RateLimited, Degraded, "
            "SpendAnomaly, ConfigInForce."
        ),
    )
    status: ConditionStatus = Field(description="status is True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0,
        description="observedGeneration is the metadata.generation this condition was computed "
        "from.",
    )
    last_transition_time: datetime = Field(
        description="lastTransitionTime is when `status` last changed.",
    )
    reason: str = Field(
        min_length=1, max_length=1024, pattern=CONDITION_REASON,
        description="reason is a CamelCase word for the cause, e.g. SecretNotFound.",
    )
    message: str = Field(
        max_length=32768,
        description="message explains the condition to a human.",
    )


_CONDITIONS_DOC = (
    "conditions describe the object's state. Ready summarises it: True once the object is "
    "served exactly as declared."
)


class VirtualKeyStatus(_Model):
    """The observed state of a VirtualKey, written by the operator and the gateway."""

    observed_generation: int | None = Field(
        default=None, ge=0,
        description="observedGeneration is the metadata.generation the operator last processed.",
    )
    conditions: Annotated[tuple[Condition, ...] | None, ListType("map", ("type",))] = Field(
        default=None, max_length=16, description=_CONDITIONS_DOC,
    )
    key_id: str | None = Field(
        default=None, max_length=63,
        description=(
            "keyId is this key's id in the gateway configuration, metrics and usage records: "
            "<namespace>.<name>, shortened with a hash suffix when longer than 63 characters."
        ),
    )
    token_secret_name: str | None = Field(
        default=None, max_length=253,
        description="tokenSecretName is the Secret that holds this key's bearer token.",
    )
    token_rotated_at: datetime | None = Field(
        default=None,
        description="tokenRotatedAt is when the operator last generated a new token.",
    )
    config_revision: str | None = Field(
        default=None, max_length=128,
        description=(
            "configRevision is the revision of the gateway configuration the operator rendered "
            "this generation into."
        ),
    )
    served_config_revision: str | None = Field(
        default=None, max_length=128,
        description=(
            "servedConfigRevision is the configuration revision of this key that every live "
            "gateway replica serves; when it equals configRevision the change is in force "
            "everywhere (the ConfigInForce condition says the same), otherwise it names the "
            "revision a lagging replica still serves."
        ),
    )
    spend: Spend | None = Field(default=None, description="spend in the current budget period.")
    usage: KeyUsage | None = Field(
        default=None, description="usage counts requests in the current budget period.",
    )


# --- ProviderCredential ---------------------------------------------------------------------


class OpenAISettings(_Model):
    """Settings only OpenAI itself understands."""

    organization: str | None = Field(
        default=None, min_length=1, max_length=256,
        description="organization is sent as the OpenAI-Organization header, e.g. \"org-abc\".",
    )


class AnthropicSettings(_Model):
    """Settings only Anthropic's Messages API understands."""

    anthropic_version: str | None = Field(
        default=None, min_length=10, max_length=10, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description=(
            "anthropicVersion is sent as the `anthropic-version` header, e.g. \"2023-06-01\". "
            "Unset: the gateway's default (2023-06-01)."
        ),
    )


DEFAULT_ACCESS_KEY_ID_KEY = "accessKeyId"
"""The Secret entry holding an AWS access key id when `awsBedrock.accessKeyIdKey` is unset."""


class AWSBedrockSettings(_Model):
    """Where to reach Amazon Bedrock, and which entries of `secretRef`'s Secret hold static
    AWS credentials."""

    region: str = Field(
        min_length=1, max_length=32, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$",
        description="region is the AWS region, e.g. \"us-east-1\".",
    )
    access_key_id_key: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=SECRET_KEY,
        description=(
            "accessKeyIdKey is the entry of the `secretRef` Secret that holds the AWS access key "
            "id (the secret access key is the entry `secretRef.key` names). Only with "
            f"`secretRef`. Unset: \"{DEFAULT_ACCESS_KEY_ID_KEY}\"."
        ),
    )
    session_token_key: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=SECRET_KEY,
        description=(
            "sessionTokenKey is the entry of the `secretRef` Secret that holds an AWS session "
            "token, for temporary credentials. Only with `secretRef`. Unset: no session token."
        ),
    )


class GCPVertexAISettings(_Model):
    """Where to reach Vertex AI, and whose models to call."""

    project: str = Field(
        min_length=6, max_length=30, pattern=r"^[a-z][-a-z0-9]*[a-z0-9]$",
        description="project is the Google Cloud project id, e.g. \"acme-ml-prod\".",
    )
    region: str = Field(
        min_length=1, max_length=32, pattern=r"^[a-z]+(-[a-z]+)*[0-9]*$",
        description="region is the Vertex AI location, e.g. \"europe-west4\" or \"global\".",
    )
    publisher: VertexPublisher = Field(
        default=VertexPublisher.GOOGLE,
        description=(
            "publisher picks the models this credential calls: Google (Gemini and Google's "
            "embedding models, through generateContent) or Anthropic (Claude on Vertex AI, "
            "through rawPredict). Declare two ProviderCredentials to serve both from one "
            "project. Default: Google."
        ),
    )


class AzureDeployment(_Model):
    """Maps a model name to the Azure deployment that serves it."""

    model: ModelName = Field(
        description="model is the name callers use, e.g. \"gpt-4o\".",
    )
    deployment: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$",
        description="deployment is the Azure OpenAI deployment name, e.g. \"gpt4o-prod\".",
    )


class AzureOpenAISettings(_Model):
    """Azure OpenAI's API version, deployments and kind of credential."""

    api_version: str = Field(
        min_length=10, max_length=32, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$",
        description="apiVersion is the Azure OpenAI REST API version, e.g. \"2024-10-21\".",
    )
    deployments: Annotated[tuple[AzureDeployment, ...], ListType("map", ("model",))] = Field(
        min_length=1, max_length=256,
        description="deployments maps each model name to its Azure deployment.",
    )
    authentication: AzureAuthentication = Field(
        default=AzureAuthentication.API_KEY,
        description=(
            "authentication says what the `secretRef` entry holds: APIKey (sent as the "
            "`api-key` header) or EntraIDToken (a Microsoft Entra ID access token, sent as "
            "`Authorization: Bearer`; whatever writes the Secret must renew it before it "
            "expires). Default: APIKey."
        ),
    )


class ProviderTimeouts(_Model):
    """Per-attempt timeouts; a timed-out attempt moves on to the next fallback."""

    connect_seconds: int | None = Field(
        default=None, ge=1, le=300,
        description="connectSeconds bounds connecting to the provider. Unset: 5.",
    )
    first_byte_seconds: int | None = Field(
        default=None, ge=1, le=3600,
        description="firstByteSeconds bounds the wait for the first response byte. Unset: 120.",
    )
    total_seconds: int | None = Field(
        default=None, ge=1, le=7200,
        description="totalSeconds bounds the whole attempt, streaming included. Unset: 600.",
    )


_KEYLESS = (ProviderType.AWS_BEDROCK, ProviderType.GCP_VERTEX_AI, ProviderType.OPENAI_COMPATIBLE)
_NEEDS_URL = (ProviderType.OPENAI_COMPATIBLE, ProviderType.AZURE_OPENAI)


def _member_rule(field: str, attribute: str, member: ProviderType, required: bool) -> Rule:
    """The CEL rule tying one union member to its `type` value."""
    if required:
        return Rule(
            cel=f"has(self.{field}) == (self.type == '{member}')",
            message=f"`{field}` must be set when `type` is '{member}', and only then",
            check=lambda s: (getattr(s, attribute) is not None) == (s.type == member),
            field_path=f".{field}",
        )
    return Rule(
        cel=f"!has(self.{field}) || self.type == '{member}'",
        message=f"`{field}` may only be set when `type` is '{member}'",
        check=lambda s: getattr(s, attribute) is None or s.type == member,
        field_path=f".{field}",
        reason="FieldValueForbidden",
    )


_ACCESS_KEY_ID_KEY_CEL = (
    "(has(self.awsBedrock.accessKeyIdKey) ? self.awsBedrock.accessKeyIdKey : "
    f"'{DEFAULT_ACCESS_KEY_ID_KEY}')"
)
_BEDROCK_KEYS_DISTINCT = (
    f"self.secretRef.key != {_ACCESS_KEY_ID_KEY_CEL} && "
    "(has(self.awsBedrock.sessionTokenKey) ? !(self.awsBedrock.sessionTokenKey in "
    f"[self.secretRef.key, {_ACCESS_KEY_ID_KEY_CEL}]) : true)"
)


def _bedrock_keys_distinct(spec: ProviderCredentialSpec) -> bool:
    """The Python twin of `_BEDROCK_KEYS_DISTINCT` (true when it does not apply)."""
    if spec.aws_bedrock is None or spec.secret_ref is None:
        return True
    entries = [spec.secret_ref.key,
               spec.aws_bedrock.access_key_id_key or DEFAULT_ACCESS_KEY_ID_KEY]
    if spec.aws_bedrock.session_token_key is not None:
        entries.append(spec.aws_bedrock.session_token_key)
    return len(set(entries)) == len(entries)


class ProviderCredentialSpec(_Model):
    """How to reach one upstream provider account, and where its credentials are kept."""

    __rules__ = (
        Rule(
            cel="self.type in ['AWSBedrock', 'GCPVertexAI', 'OpenAICompatible'] || "
            "has(self.secretRef)",
            message="`secretRef` must be set when `type` is 'OpenAI', 'Anthropic' or "
            "'AzureOpenAI'",
            check=lambda s: s.type in _KEYLESS or s.secret_ref is not None,
            field_path=".secretRef",
            reason="FieldValueRequired",
        ),
        Rule(
            cel="!(self.type in ['OpenAICompatible', 'AzureOpenAI']) || has(self.baseURL)",
            message="`baseURL` must be set when `type` is 'OpenAICompatible' or 'AzureOpenAI'",
            check=lambda s: s.type not in _NEEDS_URL or s.base_url is not None,
            field_path=".baseURL",
            reason="FieldValueRequired",
        ),
        _member_rule("openAI", "openai", ProviderType.OPENAI, required=False),
        _member_rule("awsBedrock", "aws_bedrock", ProviderType.AWS_BEDROCK, required=True),
        _member_rule("gcpVertexAI", "gcp_vertex_ai", ProviderType.GCP_VERTEX_AI, required=True),
        _member_rule("azureOpenAI", "azure_openai", ProviderType.AZURE_OPENAI, required=True),
        _member_rule("anthropic", "anthropic", ProviderType.ANTHROPIC, required=False),
        Rule(
            # Conditionals rather than `||`, as in VirtualKeySpec (cel-python evaluates both
            # sides of `||`).
            cel="has(self.awsBedrock) && !has(self.secretRef) ? "
            "!has(self.awsBedrock.accessKeyIdKey) && !has(self.awsBedrock.sessionTokenKey) : true",
            message="`awsBedrock.accessKeyIdKey` and `awsBedrock.sessionTokenKey` name entries "
            "of the `secretRef` Secret: they may only be set together with `secretRef`",
            check=lambda s: (
                s.aws_bedrock is None
                or s.secret_ref is not None
                or (s.aws_bedrock.access_key_id_key is None
                    and s.aws_bedrock.session_token_key is None)
            ),
            field_path=".awsBedrock",
            reason="FieldValueForbidden",
        ),
        Rule(
            cel=f"has(self.awsBedrock) && has(self.secretRef) ? {_BEDROCK_KEYS_DISTINCT} : true",
            message="`secretRef.key`, `awsBedrock.accessKeyIdKey` (default "
            f"'{DEFAULT_ACCESS_KEY_ID_KEY}') and `awsBedrock.sessionTokenKey` must name "
            "different entries of the Secret",
            check=lambda s: _bedrock_keys_distinct(s),
            field_path=".awsBedrock",
        ),
    )

    type: ProviderType = Field(
        description=(
            "type is the kind of API this credential reaches: OpenAI, Anthropic, AWSBedrock, "
            "GCPVertexAI, AzureOpenAI or OpenAICompatible (any server speaking OpenAI's chat "
            "completions API: vLLM, Ollama, Groq ...). The member named after the type "
            "(`openAI`, `anthropic`, `awsBedrock`, `gcpVertexAI`, `azureOpenAI`) carries its "
            "settings."
        ),
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "secretRef points at the Secret entry holding the credential, e.g. {name: "
            "openai-api-key, key: apiKey}: the API key (OpenAI, Anthropic, OpenAICompatible), "
            "the API key or Entra ID token (AzureOpenAI, see `azureOpenAI.authentication`), "
            "the secret access key (AWSBedrock; the access key id and an optional session "
            "token are other entries of the same Secret, see `awsBedrock`) or a "
            "service-account JSON key (GCPVertexAI). Required for OpenAI, Anthropic and "
            "AzureOpenAI. Unset for AWSBedrock: the default AWS credential chain of the "
            "gateway's pods (IRSA, EKS Pod Identity, instance role); for GCPVertexAI: their "
            "Application Default Credentials (GKE Workload Identity); for OpenAICompatible: "
            "no key. The values never leave Secrets."
        ),
    )
    base_url: Annotated[
        str | None,
        Rule(
            cel=f"self.matches('{HTTP_URL}')",
            message="`baseURL` must be an http or https URL, such as 'https://api.openai.com/v1'",
            check=_matches(HTTP_URL),
        ),
    ] = Field(
        default=None,
        alias="baseURL",
        max_length=2048,
        description=(
            "baseURL overrides the provider's API endpoint, e.g. \"http://vllm.ml:8000/v1\". "
            "Required for OpenAICompatible and AzureOpenAI (\"https://NAME.openai.azure.com\"). "
            "For Anthropic and GCPVertexAI it is the API root without `/v1`; for AWSBedrock "
            "the runtime endpoint (e.g. a VPC endpoint). Unset: the provider's public "
            "endpoint."
        ),
    )
    models: Annotated[tuple[ModelName, ...] | None, ListType("set")] = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description=(
            "models lists the model names this provider serves; requests for other models are "
            "not routed here. Unset: the models of the built-in price catalog for this type "
            "(for AzureOpenAI: the models of `azureOpenAI.deployments`)."
        ),
    )
    timeouts: ProviderTimeouts | None = Field(
        default=None,
        description="timeouts bound each attempt against this provider.",
    )
    openai: OpenAISettings | None = Field(
        default=None, alias="openAI",
        description="openAI holds settings for type OpenAI.",
    )
    anthropic: AnthropicSettings | None = Field(
        default=None,
        description="anthropic holds settings for type Anthropic.",
    )
    aws_bedrock: AWSBedrockSettings | None = Field(
        default=None, alias="awsBedrock",
        description="awsBedrock holds settings for type AWSBedrock (required for it).",
    )
    gcp_vertex_ai: GCPVertexAISettings | None = Field(
        default=None, alias="gcpVertexAI",
        description="gcpVertexAI holds settings for type GCPVertexAI (required for it).",
    )
    azure_openai: AzureOpenAISettings | None = Field(
        default=None, alias="azureOpenAI",
        description="azureOpenAI holds settings for type AzureOpenAI (required for it).",
    )


class ProviderCredentialStatus(_Model):
    """The observed state of a ProviderCredential, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0,
        description="observedGeneration is the metadata.generation the operator last processed.",
    )
    conditions: Annotated[tuple[Condition, ...] | None, ListType("map", ("type",))] = Field(
        default=None, max_length=16, description=_CONDITIONS_DOC,
    )
    provider_name: str | None = Field(
        default=None, max_length=63,
        description=(
            "providerName is this credential's name in the gateway configuration, metrics and "
            "`provider/model` requests: <namespace>.<name>, shortened with a hash suffix when "
            "longer than 63 characters."
        ),
    )
    config_revision: str | None = Field(
        default=None, max_length=128,
        description=(
            "configRevision is the revision of the gateway configuration the operator rendered "
            "this generation into."
        ),
    )
