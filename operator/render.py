"""Custom resources + Secrets → the GatewayConfig document and the credentials Secret.

Pure functions: the kopf handlers and `tollgate render` call the same `render()` with bodies
as the API returns them. The output holds no secret material: a provider's API key becomes
`apiKey: {file: <CREDENTIALS_MOUNT_PATH>/<provider>.apiKey}`, a file of the credentials Secret
rendered alongside, and likewise every other credential (`<provider>.accessKeyId`,
`.secretAccessKey`, `.sessionToken` for Bedrock, `.serviceAccount` for Vertex AI, `.entraToken`
for Azure OpenAI); a virtual key's token becomes its `tokenSHA256`.

Names are namespaced (`<namespace>.<name>`, hashed down to 63 characters when longer) so two
namespaces never collide. A VirtualKey always gets an explicit `allowedProviders`: left empty,
the gateway would let it use every provider of every namespace.

One broken object never takes the others down. An object with an Error is either left out
(its spec is invalid, its token is unknown, it would lose every provider) or rendered narrower
than declared (a fallback on a missing ProviderCredential is dropped); never wider. Its report
says which, for its conditions.

Output is deterministic: objects sorted, canonical JSON for revisions and shards, so rendering
unchanged input gives identical bytes and an unchanged `revision`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import yaml
from pydantic import ValidationError

from tollgate.gateway.config.models import GatewayConfig, StoreSettings, Timeouts
from tollgate.operator.keys import (
    PREVIOUS_TOKEN_KEY,
    TOKEN_KEY,
    generated_secret_name,
    token_sha256,
)
from tollgate.operator.models import (
    DEFAULT_ACCESS_KEY_ID_KEY,
    AzureAuthentication,
    ProviderCredentialSpec,
    ProviderType,
    SecretKeyRef,
    VirtualKeySpec,
)
from tollgate.operator.options import CREDENTIALS_MOUNT_PATH
from tollgate.operator.validate import (
    CredentialIndex,
    CredentialInfo,
    FieldError,
    ObjectRef,
    Problem,
    Reason,
    SecretIndex,
    Severity,
    check_metadata,
    check_timezone,
    duplicate,
    forbidden,
    invalid,
    not_found,
    parse_spec,
    required,
    resolve_provider,
    secret_value,
    too_many,
    unsupported,
)

__all__ = [
    "CONFIG_PART_KEY",
    "CREDENTIALS_MOUNT_PATH",
    "MAX_PROVIDERS",
    "PROVIDERS",
    "SHARD_MAX_BYTES",
    "RenderError",
    "RenderOptions",
    "Rendered",
    "Report",
    "canonical_json",
    "config_maps",
    "credentials_secret",
    "dump_yaml",
    "gateway_name",
    "lease_seconds",
    "render",
    "render_credentials",
    "shard",
]

SHARD_MAX_BYTES = 900 * 1024
"""Largest ConfigMap part: under the 1 MiB object limit with room for metadata."""

CONFIG_PART_KEY = "part-{index:04d}-of-{count:04d}.json"
"""The ConfigMap data key of one part; unique per part so all can share one projected volume."""

MAX_PROVIDERS = 256
MAX_ALLOWED_PROVIDERS = 64
_BASE_SECTIONS = ("server", "store", "models", "pricing", "customers")
_LOWER = str.lower


class RenderError(RuntimeError):
    """The assembled document failed the gateway's own validation: a bug or a bad `base`."""


@dataclass(frozen=True)
class RenderOptions:
    """How the operator (or the CLI) is configured, not what the resources say."""

    credentials_dir: str = CREDENTIALS_MOUNT_PATH
    shared_namespaces: tuple[str, ...] = ()
    secrets_complete: bool = True
    """False offline: a Secret missing from the input may exist in the cluster (a Warning)."""
    base: Mapping[str, Any] = field(default_factory=dict)
    """GatewayConfig sections the operator is deployed with: server, store, models, pricing,
    customers (e.g. the Redis URL). Copied as given; they may name rendered providers."""


@dataclass(frozen=True)
class Report:
    """What happened to one object: its name in the config (None: left out) and its problems."""

    obj: ObjectRef
    gateway_name: str | None
    problems: tuple[Problem, ...] = ()

    @property
    def rendered(self) -> bool:
        return self.gateway_name is not None

    @property
    def ready(self) -> bool:
        """Served exactly as declared: rendered, and no Error."""
        return self.rendered and not any(p.severity is Severity.ERROR for p in self.problems)


@dataclass(frozen=True)
class Rendered:
    config: dict[str, Any]
    """The GatewayConfig document (validated with the gateway's model)."""
    credentials: dict[str, str]
    """`data` of the credentials Secret: base64 values under `<provider>.<field>`, where field
    is the provider entry's credential field (`apiKey`, `accessKeyId`, `serviceAccount` ...)."""
    reports: dict[ObjectRef, Report]

    @property
    def revision(self) -> str:
        return str(self.config["revision"])

    @property
    def problems(self) -> list[Problem]:
        return [p for report in self.reports.values() for p in report.problems]


# --- names ----------------------------------------------------------------------------------

_GATEWAY_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")


def gateway_name(namespace: str, name: str) -> str:
    """`<namespace>.<name>`, or a 63-character prefix plus a hash when that doesn't fit.

    Namespaces hold no dots, so the plain form can't collide; the hashed form is unique in
    practice, and `render` still reports a collision rather than trusting that.
    """
    plain = f"{namespace}.{name}"
    if _GATEWAY_NAME.match(plain):
        return plain
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]
    head = re.sub(r"[^a-z0-9_.-]", "-", plain.lower())[:52].rstrip("-_.")
    return f"{head or 'x'}-{digest}"


def _ref(kind: str, body: Mapping[str, Any]) -> ObjectRef:
    metadata = body.get("metadata") or {}
    return ObjectRef(kind, str(metadata.get("namespace") or "default"), str(metadata.get("name")))


def _spec_problems(obj: ObjectRef, errors: Iterable[FieldError]) -> list[Problem]:
    return [Problem(obj, error, Reason.INVALID_SPEC) for error in errors]


# --- ProviderCredentials --------------------------------------------------------------------


def _timeouts(spec: ProviderCredentialSpec) -> dict[str, Any]:
    if spec.timeouts is None:
        return {}
    values = spec.timeouts.model_dump(by_alias=True, exclude_none=True)
    return {"timeouts": values} if values else {}


def _common(spec: ProviderCredentialSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.models is not None:
        out["models"] = sorted(spec.models)
    out.update(_timeouts(spec))
    return out


CredentialFiles = dict[str, dict[str, str]]
"""A provider entry's credential fields (`apiKey`, `accessKeyId` ...) → `{file: <path>}`."""


def _openai(spec: ProviderCredentialSpec, name: str, files: CredentialFiles) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": "openai"}
    if spec.base_url is not None:
        entry["baseURL"] = spec.base_url
    entry.update(files)
    if spec.openai is not None and spec.openai.organization is not None:
        entry["organization"] = spec.openai.organization
    return {**entry, **_common(spec)}


def _openai_compatible(spec: ProviderCredentialSpec, name: str, files: CredentialFiles
                       ) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": "openai-compatible", "baseURL": spec.base_url}
    entry.update(files)
    return {**entry, **_common(spec)}


def _anthropic(spec: ProviderCredentialSpec, name: str, files: CredentialFiles
               ) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": "anthropic"}
    if spec.base_url is not None:
        entry["baseURL"] = spec.base_url
    entry.update(files)
    if spec.anthropic is not None and spec.anthropic.anthropic_version is not None:
        entry["anthropicVersion"] = spec.anthropic.anthropic_version
    return {**entry, **_common(spec)}


def _bedrock(spec: ProviderCredentialSpec, name: str, files: CredentialFiles) -> dict[str, Any]:
    assert spec.aws_bedrock is not None  # the member rule
    entry: dict[str, Any] = {"name": name, "type": "bedrock", "region": spec.aws_bedrock.region}
    if spec.base_url is not None:
        entry["baseURL"] = spec.base_url
    # No files: the gateway pods' default AWS credential chain (IRSA, Pod Identity ...).
    entry.update(files)
    return {**entry, **_common(spec)}


def _vertex(spec: ProviderCredentialSpec, name: str, files: CredentialFiles) -> dict[str, Any]:
    vertex = spec.gcp_vertex_ai
    assert vertex is not None  # the member rule
    entry: dict[str, Any] = {"name": name, "type": "vertex", "project": vertex.project,
                             "region": vertex.region, "publisher": _LOWER(vertex.publisher)}
    if spec.base_url is not None:
        entry["baseURL"] = spec.base_url
    # No file: the gateway pods' Application Default Credentials (Workload Identity ...).
    entry.update(files)
    return {**entry, **_common(spec)}


def _azure_openai(spec: ProviderCredentialSpec, name: str, files: CredentialFiles
                  ) -> dict[str, Any]:
    azure = spec.azure_openai
    assert azure is not None  # the member rule
    entry: dict[str, Any] = {
        "name": name,
        "type": "azure-openai",
        "baseURL": spec.base_url,
        "apiVersion": azure.api_version,
        # A map keyed by model (the CRD's list-map): canonical order.
        "deployments": [{"model": d.model, "deployment": d.deployment}
                        for d in sorted(azure.deployments, key=lambda d: d.model)],
    }
    entry.update(files)
    return {**entry, **_common(spec)}


_ProviderRenderer = Callable[[ProviderCredentialSpec, str, CredentialFiles], dict[str, Any]]

PROVIDERS: dict[ProviderType, _ProviderRenderer] = {
    ProviderType.OPENAI: _openai,
    ProviderType.ANTHROPIC: _anthropic,
    ProviderType.AWS_BEDROCK: _bedrock,
    ProviderType.GCP_VERTEX_AI: _vertex,
    ProviderType.AZURE_OPENAI: _azure_openai,
    ProviderType.OPENAI_COMPATIBLE: _openai_compatible,
}
"""The provider types the gateway serves; any other is reported ProviderNotSupported."""


@dataclass(frozen=True)
class _SecretFile:
    """One credential file of a provider entry: the gateway field it fills and the Secret entry
    the operator copies into the credentials Secret for it."""

    gateway_field: str
    ref: SecretKeyRef
    key_field: str | None = None
    """The spec field naming the entry, when it is not `spec.secretRef.key`."""


def _secret_files(spec: ProviderCredentialSpec) -> list[_SecretFile]:
    """Which Secret entries become which credential files of the provider entry.

    One entry (`secretRef`) for every type but AWSBedrock, whose `secretRef` Secret holds the
    secret access key under `secretRef.key`, the access key id under `accessKeyIdKey` and, for
    temporary credentials, a session token under `sessionTokenKey`. No `secretRef`: no files.
    """
    ref = spec.secret_ref
    if ref is None:
        return []
    if spec.type is ProviderType.AWS_BEDROCK and spec.aws_bedrock is not None:
        bedrock = spec.aws_bedrock
        access_key_id = bedrock.access_key_id_key or DEFAULT_ACCESS_KEY_ID_KEY
        files = [
            _SecretFile("accessKeyId", ref.model_copy(update={"key": access_key_id}),
                        "spec.awsBedrock.accessKeyIdKey"),
            _SecretFile("secretAccessKey", ref),
        ]
        if bedrock.session_token_key is not None:
            files.append(_SecretFile("sessionToken",
                                     ref.model_copy(update={"key": bedrock.session_token_key}),
                                     "spec.awsBedrock.sessionTokenKey"))
        return files
    if spec.type is ProviderType.GCP_VERTEX_AI:
        return [_SecretFile("serviceAccount", ref)]
    if (spec.type is ProviderType.AZURE_OPENAI and spec.azure_openai is not None
            and spec.azure_openai.authentication is AzureAuthentication.ENTRA_ID_TOKEN):
        return [_SecretFile("entraToken", ref)]
    return [_SecretFile("apiKey", ref)]


def _service_account_problem(obj: ObjectRef, file: _SecretFile, value: bytes
                             ) -> Problem | None:
    """The Secret entry must be a service-account JSON key: the gateway cannot mint tokens
    from anything else (and the message must never quote the value)."""
    try:
        info = json.loads(value)
    except ValueError:
        info = None
    if isinstance(info, dict) and all(isinstance(info.get(k), str) and info[k]
                                      for k in ("client_email", "private_key")):
        return None
    error = invalid(file.key_field or "spec.secretRef.key", file.ref.key,
                    f"Secret {file.ref.name!r} holds no service-account JSON key under it (a "
                    "JSON object with `client_email` and `private_key`, as `gcloud iam "
                    "service-accounts keys create` writes)")
    return Problem(obj, error, Reason.INVALID_SECRET)


@dataclass
class _Credentials:
    infos: list[CredentialInfo] = field(default_factory=list)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    reports: dict[ObjectRef, Report] = field(default_factory=dict)


def _credential_key(provider: str, gateway_field: str = "apiKey") -> str:
    return f"{provider}.{gateway_field}"


def _credential_files(obj: ObjectRef, spec: ProviderCredentialSpec, name: str,
                      secrets: SecretIndex, options: RenderOptions, out: _Credentials,
                      problems: list[Problem]) -> CredentialFiles:
    """The file references of one provider entry; copies the values into `out.data`.

    A reference is rendered even when its value can't be read: the gateway treats a provider
    whose credential file is missing as unavailable and fails over, so keys naming it keep
    working meanwhile, and it never falls back to the pods' own identity (which may reach more
    than this credential was meant to).
    """
    files: CredentialFiles = {}
    for file in _secret_files(spec):
        key = _credential_key(name, file.gateway_field)
        files[file.gateway_field] = {"file": f"{options.credentials_dir.rstrip('/')}/{key}"}
        value, problem = secret_value(obj, "spec.secretRef", file.ref, secrets, file.key_field)
        if value is not None:
            out.data[key] = base64.b64encode(value).decode()
            if file.gateway_field == "serviceAccount":
                problem = _service_account_problem(obj, file, value)
        if problem is not None and problem not in problems:  # one missing Secret, once
            problems.append(problem)
    return files


def lease_seconds(options: RenderOptions) -> float | None:
    """The gateway's budget-hold lease (`store.leaseSeconds`), which every provider's total
    timeout must stay within; None when this gateway version has no such setting."""
    field_info = StoreSettings.model_fields.get("lease_seconds")
    if field_info is None:
        return None
    store = options.base.get("store") or {}
    return float(store.get("leaseSeconds", field_info.default))


def _total_seconds(spec: ProviderCredentialSpec) -> float:
    if spec.timeouts is not None and spec.timeouts.total_seconds is not None:
        return float(spec.timeouts.total_seconds)
    return float(Timeouts.model_fields["total_seconds"].default)


def _rejected_problem(obj: ObjectRef, detail: str) -> Problem:
    return Problem(obj, forbidden("spec", f"the gateway's configuration validation rejects it: "
                                          f"{detail}"), Reason.INVALID_SPEC)


def _render_credentials(bodies: Iterable[Mapping[str, Any]], secrets: SecretIndex,
                        options: RenderOptions,
                        rejected: Mapping[ObjectRef, str] | None = None) -> _Credentials:
    out = _Credentials()
    used: set[str] = set()
    rejected = rejected or {}
    lease = lease_seconds(options)
    for obj, body in sorted(((_ref("ProviderCredential", b), b) for b in bodies),
                            key=lambda pair: pair[0]):
        meta_errors = check_metadata(body)
        if meta_errors:
            out.reports[obj] = Report(obj, None, tuple(_spec_problems(obj, meta_errors)))
            continue
        name = gateway_name(obj.namespace, obj.name)
        spec, errors = parse_spec(ProviderCredentialSpec, body.get("spec"))
        problems = _spec_problems(obj, errors)
        not_served: str | None = None
        if spec is None:
            not_served = "its spec is invalid"
        elif spec.type not in PROVIDERS:
            supported = [str(t) for t in PROVIDERS]
            problems.append(Problem(obj, unsupported("spec.type", str(spec.type), supported),
                                    Reason.PROVIDER_NOT_SUPPORTED))
            not_served = f"type {str(spec.type)!r} is not supported by the gateway yet"
        elif lease is not None and _total_seconds(spec) > lease:
            total = _total_seconds(spec)
            problems.append(Problem(obj, invalid(
                "spec.timeouts.totalSeconds", int(total) if total.is_integer() else total,
                f"must not exceed the gateway's `store.leaseSeconds` ({lease:g}), or a long "
                "request would outlive its budget hold"), Reason.INVALID_SPEC))
            not_served = "its total timeout outlasts the gateway's budget-hold lease"
        elif obj in rejected:
            problems.append(_rejected_problem(obj, rejected[obj]))
            not_served = "the gateway's configuration validation rejects it"
        elif name in used:
            problems.append(Problem(obj, duplicate("metadata.name", obj.name,
                                                   f"its gateway name {name!r} is taken"),
                                    Reason.DUPLICATE_NAME))
            not_served = f"its gateway name {name!r} is taken"
        elif len(out.entries) >= MAX_PROVIDERS:
            problems.append(Problem(obj, forbidden("metadata.name", f"the gateway serves at most "
                                                   f"{MAX_PROVIDERS} ProviderCredentials"),
                                    Reason.LIMIT_EXCEEDED))
            not_served = "the gateway's provider limit is reached"
        if spec is not None and not_served is None:
            files = _credential_files(obj, spec, name, secrets, options, out, problems)
            out.entries[name] = PROVIDERS[spec.type](spec, name, files)
            used.add(name)
        out.infos.append(CredentialInfo(obj, spec, name, not_served))
        out.reports[obj] = Report(obj, None if not_served else name, tuple(problems))
    return out


# --- VirtualKeys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    field: str
    hashes: tuple[str, ...]


def _token(obj: ObjectRef, spec: VirtualKeySpec, secrets: SecretIndex
           ) -> tuple[_Token | None, Problem | None]:
    """The key's token hash (and a rotation predecessor), from wherever the spec says."""
    if spec.token_sha256 is not None:
        return _Token("spec.tokenSHA256", (spec.token_sha256,)), None
    if spec.token_secret_ref is not None:
        value, problem = secret_value(obj, "spec.tokenSecretRef", spec.token_secret_ref, secrets)
        if value is None:
            return None, problem
        return _Token("spec.tokenSecretRef", (token_sha256(value),)), None
    generated = generated_secret_name(obj.name)
    data = secrets.get(obj.namespace, generated)
    if data is None or not data.get(TOKEN_KEY, b"").strip():
        detail = (f"the operator generates the token into Secret {generated!r}"
                  if secrets.complete else
                  f"the operator generates the token into Secret {generated!r} in the cluster; "
                  "set `tokenSHA256` to render this key offline")
        return None, Problem(obj, required("spec.tokenSecretRef", detail), Reason.TOKEN_PENDING,
                             Severity.WARNING)
    hashes = [token_sha256(data[TOKEN_KEY])]
    previous = data.get(PREVIOUS_TOKEN_KEY, b"").strip()
    if previous and token_sha256(previous) != hashes[0]:
        hashes.append(token_sha256(previous))
    return _Token("spec.tokenSecretRef", tuple(hashes)), None


def _budget(obj: ObjectRef, spec: VirtualKeySpec) -> tuple[dict[str, Any] | None, Problem | None]:
    if spec.budget is None:
        return None, None
    budget = spec.budget
    error = check_timezone("spec.budget.timezone", budget.timezone)
    if error is not None:
        return None, Problem(obj, error, Reason.INVALID_SPEC)
    return {
        "maxUSD": budget.max_usd,
        "period": _LOWER(budget.period),
        "timezone": budget.timezone,
        "onExceededInStream": _LOWER(budget.on_exceeded_in_stream),
    }, None


def _served_models(spec: ProviderCredentialSpec) -> tuple[str, tuple[str, ...]] | None:
    """The field declaring the models a credential serves, and those models; None when the
    price catalog decides (the gateway's, not known here)."""
    if spec.models is not None:
        return "models", spec.models
    if spec.azure_openai is not None:
        return "azureOpenAI.deployments", tuple(d.model for d in spec.azure_openai.deployments)
    return None


def _render_key(obj: ObjectRef, spec: VirtualKeySpec, key_id: str, token: _Token,
                credentials: CredentialIndex, problems: list[Problem]) -> dict[str, Any] | None:
    """The virtualKeys entry, or None when it can't be served without widening it."""
    allowed: list[str] = []
    if spec.allowed_providers is not None:
        for i, name in enumerate(spec.allowed_providers):
            info, problem = resolve_provider(obj, f"spec.allowedProviders[{i}]", name, credentials)
            if problem is not None:
                problems.append(problem)
            elif info is not None:
                allowed.append(info.gateway_name)
        if not allowed:
            problems.append(Problem(obj, invalid("spec.allowedProviders", list(
                spec.allowed_providers), "none of these ProviderCredentials is served, so the "
                "key is not served"), Reason.NO_PROVIDERS))
            return None
    else:
        allowed = [i.gateway_name for i in credentials.visible(obj.namespace) if not i.not_served]
        if not allowed:
            problems.append(Problem(obj, required("spec.allowedProviders", "no ProviderCredential "
                                                  "is served for this namespace, so the key is "
                                                  "not served"), Reason.NO_PROVIDERS))
            return None
        if len(allowed) > MAX_ALLOWED_PROVIDERS:
            problems.append(Problem(obj, too_many("spec.allowedProviders", len(allowed),
                                                  MAX_ALLOWED_PROVIDERS) , Reason.LIMIT_EXCEEDED))
            return None

    fallbacks: list[dict[str, str]] = []
    for i, step in enumerate(spec.fallbacks or ()):
        where = f"spec.fallbacks[{i}]"
        info, problem = resolve_provider(obj, f"{where}.provider", step.provider, credentials)
        if problem is not None:
            problems.append(problem)
            continue
        assert info is not None and info.spec is not None
        if info.gateway_name not in allowed:
            problems.append(Problem(obj, forbidden(f"{where}.provider", "must be listed in "
                                                   "`allowedProviders`"), Reason.INVALID_SPEC))
            continue
        served = _served_models(info.spec)
        if served is not None and step.model not in served[1]:
            problems.append(Problem(obj, not_found(f"{where}.model", step.model,
                                                   f"not in the `{served[0]}` of {info.ref}"),
                                    Reason.MODEL_NOT_SERVED))
        fallbacks.append({"provider": info.gateway_name, "model": step.model})

    if spec.expires_at is not None and spec.expires_at.tzinfo is None:
        problems.append(Problem(obj, invalid("spec.expiresAt", spec.expires_at.isoformat(),
                                             "must carry a time zone, e.g. "
                                             "2027-01-01T00:00:00Z"), Reason.INVALID_SPEC))
        return None
    budget, problem = _budget(obj, spec)
    if problem is not None:
        problems.append(problem)
        return None

    entry: dict[str, Any] = {"id": key_id}
    if spec.customer_id is not None:
        entry["customerId"] = spec.customer_id
    entry["tokenSHA256"] = token.hashes[0]
    if len(token.hashes) > 1:
        entry["previousTokenSHA256"] = token.hashes[1]
    entry["enabled"] = spec.enabled
    if spec.expires_at is not None:
        entry["expiresAt"] = spec.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    entry["allowedProviders"] = sorted(set(allowed))
    if spec.allowed_models is not None:
        entry["allowedModels"] = sorted(spec.allowed_models)
    if fallbacks:
        entry["fallbacks"] = fallbacks
    if spec.metadata:
        entry["metadata"] = {m.name: m.value for m in sorted(spec.metadata, key=lambda m: m.name)}
    if budget is not None:
        entry["budget"] = budget
    if spec.rate_limit is not None:
        entry["rateLimit"] = spec.rate_limit.model_dump(by_alias=True, exclude_none=True)
    entry["onStoreUnavailable"] = _LOWER(spec.on_store_unavailable)
    return entry


def _render_keys(bodies: Iterable[Mapping[str, Any]], secrets: SecretIndex,
                 credentials: CredentialIndex, rejected: Mapping[ObjectRef, str]
                 ) -> tuple[list[dict[str, Any]], dict[ObjectRef, Report]]:
    entries: list[dict[str, Any]] = []
    reports: dict[ObjectRef, Report] = {}
    ids: set[str] = set()
    hashes: set[str] = set()
    for obj, body in sorted(((_ref("VirtualKey", b), b) for b in bodies),
                            key=lambda pair: pair[0]):
        meta_errors = check_metadata(body)
        if meta_errors:
            reports[obj] = Report(obj, None, tuple(_spec_problems(obj, meta_errors)))
            continue
        spec, errors = parse_spec(VirtualKeySpec, body.get("spec"))
        problems = _spec_problems(obj, errors)
        entry: dict[str, Any] | None = None
        key_id = gateway_name(obj.namespace, obj.name)
        if spec is not None and obj in rejected:
            problems.append(_rejected_problem(obj, rejected[obj]))
        elif spec is not None:
            token, problem = _token(obj, spec, secrets)
            if problem is not None:
                problems.append(problem)
            elif token is not None and key_id in ids:
                problems.append(Problem(obj, duplicate("metadata.name", obj.name,
                                                       f"its key id {key_id!r} is taken"),
                                        Reason.DUPLICATE_NAME))
            elif token is not None and hashes.intersection(token.hashes):
                problems.append(Problem(obj, duplicate(token.field, "<token>", "another "
                                                       "VirtualKey already uses this token"),
                                        Reason.DUPLICATE_TOKEN))
            elif token is not None:
                entry = _render_key(obj, spec, key_id, token, credentials, problems)
                if entry is not None:
                    ids.add(key_id)
                    hashes.update(token.hashes)
                    entries.append(entry)
        reports[obj] = Report(obj, key_id if entry is not None else None, tuple(problems))
    entries.sort(key=lambda e: e["id"])
    return entries, reports


# --- the document ---------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8: equal documents give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_MAX_PASSES = 5
_ENTRY = re.compile(r"^(providers|virtualKeys)\[(\d+)\]")


def _culprits(exc: ValidationError, config: Mapping[str, Any],
              owners: Mapping[tuple[str, str], ObjectRef]) -> dict[ObjectRef, str]:
    """The objects whose entries the gateway's own validation rejected, with its message.

    A safety net for rules the gateway adds after this renderer learned them: such an entry
    is dropped and reported on its object instead of failing every tenant's config.
    """
    found: dict[ObjectRef, str] = {}
    for error in exc.errors(include_url=False):
        loc, message = tuple(error["loc"]), str(error["msg"]).removeprefix("Value error, ")
        chunks = ([(loc[0], loc[1], message)] if len(loc) >= 2 and isinstance(loc[1], int)
                  else [(m[1], int(m[2]), chunk) for chunk in message.split("; ")
                        if (m := _ENTRY.match(chunk))])
        for section, index, detail in chunks:
            if section not in ("providers", "virtualKeys"):
                continue
            entry = config[section][index]
            owner = owners.get((section, entry["name" if section == "providers" else "id"]))
            if owner is not None:
                found.setdefault(owner, detail)
    return found


def render(
    virtual_keys: Iterable[Mapping[str, Any]],
    provider_credentials: Iterable[Mapping[str, Any]],
    secrets: Iterable[Mapping[str, Any]],
    options: RenderOptions | None = None,
) -> Rendered:
    """Every custom resource → one GatewayConfig, the credentials Secret data and a report per
    object (for its conditions). Raises RenderError only when the gateway rejects the result
    for a reason no single object explains (e.g. a bad `options.base`)."""
    options = options or RenderOptions()
    unknown = set(options.base) - set(_BASE_SECTIONS)
    if unknown:
        raise ValueError(f"`base` may only hold {', '.join(_BASE_SECTIONS)}; got {sorted(unknown)}")
    key_bodies, credential_bodies = list(virtual_keys), list(provider_credentials)
    index = SecretIndex(secrets, complete=options.secrets_complete)
    rejected: dict[ObjectRef, str] = {}
    for _ in range(_MAX_PASSES):
        creds = _render_credentials(credential_bodies, index, options, rejected)
        keys, key_reports = _render_keys(
            key_bodies, index, CredentialIndex(creds.infos, options.shared_namespaces), rejected)
        config = _document(creds, keys, options)
        try:
            GatewayConfig.model_validate(config)
        except ValidationError as exc:
            owners = {("providers", i.gateway_name): i.ref for i in creds.infos}
            owners.update({("virtualKeys", r.gateway_name): r.obj
                           for r in key_reports.values() if r.gateway_name})
            culprits = _culprits(exc, config, owners)
            if not culprits or culprits.keys() <= rejected.keys():
                raise RenderError(f"the rendered GatewayConfig is invalid: {exc}") from None
            rejected.update(culprits)
            continue
        return Rendered(config, dict(sorted(creds.data.items())),
                        {**creds.reports, **key_reports})
    raise RenderError("the gateway kept rejecting the rendered GatewayConfig")


def _document(creds: _Credentials, keys: list[dict[str, Any]], options: RenderOptions
              ) -> dict[str, Any]:
    document: dict[str, Any] = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "GatewayConfig"}
    document.update({s: options.base[s] for s in _BASE_SECTIONS if s in options.base})
    document["providers"] = [creds.entries[name] for name in sorted(creds.entries)]
    document["virtualKeys"] = keys
    revision = hashlib.sha256(canonical_json(document).encode()).hexdigest()[:16]
    return {"apiVersion": document.pop("apiVersion"), "kind": document.pop("kind"),
            "revision": revision, **document}


def render_credentials(
    provider_credentials: Iterable[Mapping[str, Any]],
    secrets: Iterable[Mapping[str, Any]],
    options: RenderOptions | None = None,
) -> dict[str, str]:
    """Only the credentials Secret's `data` (base64), keyed `<provider>.<field>` (`.apiKey`,
    `.accessKeyId` ...), which the gateway mounts as files under `options.credentials_dir` —
    for a handler reacting to a Secret change alone. `render().credentials` is authoritative:
    it also leaves out a credential the gateway's own validation rejected."""
    options = options or RenderOptions()
    creds = _render_credentials(provider_credentials,
                                SecretIndex(secrets, options.secrets_complete), options)
    return dict(sorted(creds.data.items()))


def dump_yaml(config: Mapping[str, Any]) -> str:
    """Human-readable YAML in the document's own key order (what `tollgate render` prints)."""
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True, width=100)


# --- ConfigMap-sized parts ------------------------------------------------------------------


_ENVELOPE = ("apiVersion", "kind", "revision")


@dataclass
class _Part:
    fixed: dict[str, str]
    lists: dict[str, list[str]] = field(default_factory=dict)

    def text(self) -> str:
        members = dict(self.fixed)
        members.update({k: "[" + ",".join(v) + "]" for k, v in self.lists.items()})
        return "{" + ",".join(f"{json.dumps(k)}:{members[k]}" for k in sorted(members)) + "}"


def shard(config: Mapping[str, Any], max_bytes: int = SHARD_MAX_BYTES) -> list[str]:
    """Split a GatewayConfig into JSON parts of at most `max_bytes` each (UTF-8).

    Every part carries `apiVersion`, `kind` and `revision`; part 0 also carries the object
    sections (`server`, `store`). List sections (`providers`, `virtualKeys`, ...) are packed
    in order across parts. Merging them back: check all parts share one revision and that
    parts 0..count-1 are all present, then concatenate each list section in part order and take
    every other field from part 0. A single part is a complete GatewayConfig by itself.
    """
    envelope = {k: canonical_json(config[k]) for k in _ENVELOPE}
    first = dict(envelope)
    first.update({k: canonical_json(v) for k, v in config.items()
                  if k not in _ENVELOPE and not isinstance(v, list)})
    parts = [_Part(first)]
    size = len(parts[0].text().encode())
    for section, items in config.items():
        if not isinstance(items, list):
            continue
        opened = False
        for item in items:
            encoded = canonical_json(item)
            cost = len(encoded.encode()) + 1
            if not opened:
                cost += len(json.dumps(section).encode()) + 4  # "name":[] and a comma
            if size + cost > max_bytes:
                parts.append(_Part(dict(envelope)))
                size = len(parts[-1].text().encode())
                opened = False
                cost = len(encoded.encode()) + len(json.dumps(section).encode()) + 5
                if size + cost > max_bytes:
                    raise ValueError(f"one {section} entry is larger than {max_bytes} bytes")
            parts[-1].lists.setdefault(section, []).append(encoded)
            opened = True
            size += cost
        if not items:
            parts[0].lists.setdefault(section, [])
            size += len(json.dumps(section).encode()) + 4
    texts = [part.text() for part in parts]
    assert all(len(t.encode()) <= max_bytes for t in texts), "shard size accounting is off"
    return texts


def config_maps(config: Mapping[str, Any], name: str, namespace: str,
                max_bytes: int = SHARD_MAX_BYTES) -> list[dict[str, Any]]:
    """The ConfigMaps holding `config`: `<name>-0` … `<name>-<n-1>`, one part each.

    Labels let the gateway list them (`tollgate.dev/config=<name>`) and see which revision and
    part each holds; the operator deletes `<name>-<i>` for i ≥ n after writing these.
    """
    parts = shard(config, max_bytes)
    revision = str(config["revision"])
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{name}-{index}",
                "namespace": namespace,
                "labels": {
                    "app.kubernetes.io/name": "tollgate",
                    "app.kubernetes.io/component": "gateway-config",
                    "tollgate.dev/config": name,
                    "tollgate.dev/config-revision": revision,
                    "tollgate.dev/config-part": str(index),
                    "tollgate.dev/config-parts": str(len(parts)),
                },
            },
            "data": {CONFIG_PART_KEY.format(index=index, count=len(parts)): text},
        }
        for index, text in enumerate(parts)
    ]


def credentials_secret(rendered: Rendered, name: str, namespace: str) -> dict[str, Any]:
    """The Secret the gateway mounts at CREDENTIALS_MOUNT_PATH."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "tollgate",
                "app.kubernetes.io/component": "gateway-credentials",
            },
        },
        "data": dict(rendered.credentials),
    }
