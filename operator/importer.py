"""`tollgate import --from litellm|bifrost FILE`: another gateway's config → our manifests.

Pure functions: a parsed LiteLLM proxy `config.yaml` or Bifrost `config.json` goes in, an
`Imported` comes out — ProviderCredential and VirtualKey bodies plus one line per thing that
could not be mapped. Nothing here reads the environment or a Secret value: a credential becomes a
`secretRef` to a Secret named after its environment variable (`os.environ/OPENAI_API_KEY`,
`env.OPENAI_API_KEY` → Secret `openai-api-key`), and an inline literal key is never copied (the
credential points at a Secret the user must create, and a warning says so).

What maps: one ProviderCredential per distinct provider + endpoint + credential, with the models
it serves (Azure deployments become `azureOpenAI.deployments`). Bifrost governance virtual keys
become VirtualKeys (budget, per-minute rate limits, allowed providers/models; an inline token
becomes only its `tokenSHA256`). LiteLLM keeps virtual keys in its database, so none are emitted.
Routing (load balancing weights, model-level fallbacks, aliases, retries) has no place in the
CRDs: each is reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from tollgate.operator.keys import token_sha256
from tollgate.operator.models import API_VERSION, NAME_MAX

__all__ = ["Imported", "ImportError_", "convert", "dump_manifests", "from_bifrost",
           "from_litellm", "import_main", "load_source"]

SOURCES = ("litellm", "bifrost")


class ImportError_(Exception):  # noqa: N801 - not the builtin
    """The input file cannot be read or parsed."""


@dataclass
class Imported:
    provider_credentials: list[dict[str, Any]] = field(default_factory=list)
    virtual_keys: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def manifests(self) -> list[dict[str, Any]]:
        return [*self.provider_credentials, *self.virtual_keys]


# --- helpers ----------------------------------------------------------------------------------


def _slug(text: str, limit: int = NAME_MAX) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "imported"


def _env_ref(value: Any, prefix: str) -> str | None:
    """The variable name of an environment reference (`os.environ/X`, `env.X`), else None."""
    if isinstance(value, str) and value.startswith(prefix) and len(value) > len(prefix):
        return value[len(prefix):]
    return None


@dataclass
class _Credential:
    """A ProviderCredential being assembled; `identity` decides what counts as distinct."""

    base_name: str
    spec: dict[str, Any]
    models: list[str] = field(default_factory=list)
    deployments: dict[str, str] = field(default_factory=dict)  # Azure: model → deployment
    name: str = ""


class _Builder:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.credentials: dict[str, _Credential] = {}
        self.warnings: list[str] = []
        self._names: set[str] = set()

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def secret_ref(self, where: str, value: Any, prefix: str, key: str, fallback_name: str
                   ) -> dict[str, str] | None:
        """A secretRef for a credential value; an inline literal is reported, never copied."""
        if value in (None, ""):
            return None
        env = _env_ref(value, prefix)
        if env is not None:
            return {"name": _slug(env, 253), "key": key}
        name = _slug(fallback_name, 253)
        self.warn(f"{where}: inline secret not imported, create a Secret: kubectl create secret "
                  f"generic {name} --from-literal={key}=…")
        return {"name": name, "key": key}

    def credential(self, base_name: str, spec: dict[str, Any]) -> _Credential:
        identity = json.dumps(spec, sort_keys=True)
        found = self.credentials.get(identity)
        if found is None:
            found = self.credentials[identity] = _Credential(base_name, spec)
            name, n = _slug(base_name), 2
            while name in self._names:
                suffix = f"-{n}"
                name, n = _slug(base_name, NAME_MAX - len(suffix)) + suffix, n + 1
            self._names.add(name)
            found.name = name
        return found

    def result(self) -> Imported:
        imported = Imported(warnings=self.warnings)
        for cred in self.credentials.values():
            spec = dict(cred.spec)
            if cred.deployments:
                spec["azureOpenAI"] = {
                    **spec["azureOpenAI"],
                    "deployments": [{"model": m, "deployment": d}
                                    for m, d in sorted(cred.deployments.items())],
                }
            elif cred.models:
                spec["models"] = sorted(set(cred.models))
            imported.provider_credentials.append(_object("ProviderCredential", cred.name,
                                                         self.namespace, spec))
        return imported


def _object(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# --- LiteLLM ----------------------------------------------------------------------------------

_LITELLM_ENV = "os.environ/"
_LITELLM_COMPATIBLE = ("hosted_vllm", "ollama", "ollama_chat", "openai_like", "lm_studio",
                       "together_ai", "groq", "deepseek", "mistral", "fireworks_ai")
_LITELLM_HANDLED = {"model", "api_key", "api_base", "api_version", "aws_region_name",
                    "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                    "vertex_project", "vertex_location", "vertex_credentials", "timeout",
                    "organization"}


def from_litellm(config: Any, namespace: str = "default") -> Imported:
    """A LiteLLM proxy config (parsed YAML) → ProviderCredentials and warnings."""
    if not isinstance(config, Mapping):
        raise ImportError_("a LiteLLM config is a YAML mapping with `model_list`")
    b = _Builder(namespace)
    model_list = config.get("model_list") or []
    if not isinstance(model_list, list):
        raise ImportError_("`model_list` must be a list")
    by_public: dict[str, list[str]] = {}
    for index, entry in enumerate(model_list):
        where = f"model_list[{index}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("litellm_params"), Mapping):
            b.warn(f"{where}: no `litellm_params`, skipped")
            continue
        public = str(entry.get("model_name") or "")
        where = f"model_list[{index}] ({public})" if public else where
        served = _litellm_entry(b, where, public, entry["litellm_params"])
        if served is not None:
            by_public.setdefault(public, []).append(served)
        for key in sorted(set(entry) - {"model_name", "litellm_params"}):
            b.warn(f"{where}: `{key}` not mapped")
    for public, targets in sorted(by_public.items()):
        if len(targets) > 1:
            b.warn(f"model_name {public!r}: load balancing across {len(targets)} deployments "
                   f"({', '.join(targets)}) not mapped; list them in each VirtualKey's "
                   "`fallbacks` instead")
    router = config.get("router_settings") or {}
    if isinstance(router, Mapping):
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for rule in router.get(key) or []:
                if isinstance(rule, Mapping):
                    for source, targets in rule.items():
                        b.warn(f"router_settings.{key}: {source} → {', '.join(map(str, targets))}"
                               " not mapped; fallbacks are per VirtualKey (`spec.fallbacks`)")
        for key in sorted(set(router) - {"fallbacks", "context_window_fallbacks",
                                         "content_policy_fallbacks"}):
            b.warn(f"router_settings.{key}: not mapped")
    for section in ("general_settings", "litellm_settings", "environment_variables"):
        values = config.get(section) or {}
        if isinstance(values, Mapping):
            for key in sorted(values):
                b.warn(f"{section}.{key}: not mapped")
    for key in sorted(set(config) - {"model_list", "router_settings", "general_settings",
                                     "litellm_settings", "environment_variables"}):
        b.warn(f"{key}: not mapped")
    b.warn("virtual keys: LiteLLM keeps them in its database, none imported; create "
           "VirtualKeys (see deploy/samples/tenants/)")
    return b.result()


def _litellm_entry(b: _Builder, where: str, public: str, params: Mapping[str, Any]
                   ) -> str | None:
    """Adds the deployment to a credential; returns `provider/model`, or None if unmapped."""
    model = str(params.get("model") or "")
    prefix, _, upstream = model.partition("/")
    if not upstream:
        prefix, upstream = ("openai" if model.startswith(("gpt-", "o1", "o3", "o4"))
                            else "anthropic" if model.startswith("claude") else ""), model
    api_base = params.get("api_base")
    spec: dict[str, Any]
    secret = None
    if prefix == "openai" and api_base and "api.openai.com" not in str(api_base) or (
            prefix in _LITELLM_COMPATIBLE):
        if not api_base:
            b.warn(f"{where}: provider {prefix!r} without `api_base` not mapped")
            return None
        kind, base = "OpenAICompatible", prefix if prefix != "openai" else "openai-compatible"
        spec = {"type": kind, "baseURL": str(api_base)}
        secret = b.secret_ref(where, params.get("api_key"), _LITELLM_ENV, "apiKey",
                              f"{base}-api-key")
    elif prefix == "openai":
        base = "openai"
        spec = {"type": "OpenAI"}
        secret = b.secret_ref(where, params.get("api_key"), _LITELLM_ENV, "apiKey",
                              "openai-api-key") or {"name": "openai-api-key", "key": "apiKey"}
        if params.get("organization"):
            spec["openAI"] = {"organization": str(params["organization"])}
    elif prefix == "anthropic":
        base = "anthropic"
        spec = {"type": "Anthropic"}
        if api_base:
            spec["baseURL"] = str(api_base)
        secret = b.secret_ref(where, params.get("api_key"), _LITELLM_ENV, "apiKey",
                              "anthropic-api-key") or {"name": "anthropic-api-key",
                                                       "key": "apiKey"}
    elif prefix == "bedrock":
        region = params.get("aws_region_name")
        if not region:
            b.warn(f"{where}: bedrock without `aws_region_name` not mapped")
            return None
        base, bedrock = "bedrock", {"region": str(region)}
        spec = {"type": "AWSBedrock"}
        secret_env = _env_ref(params.get("aws_secret_access_key"), _LITELLM_ENV)
        if params.get("aws_secret_access_key") is not None:
            secret = b.secret_ref(where, params.get("aws_secret_access_key"), _LITELLM_ENV,
                                  "secretAccessKey", "bedrock-aws-keys")
            if secret_env:
                secret = {"name": _slug(secret_env.replace("SECRET_ACCESS_KEY", "KEYS")),
                          "key": "secretAccessKey"}
            bedrock["accessKeyIdKey"] = "accessKeyId"
            b.warn(f"{where}: the AWS access key id and secret access key must be entries "
                   f"`accessKeyId` and `secretAccessKey` of Secret {secret['name']!r}")
            if params.get("aws_session_token"):
                bedrock["sessionTokenKey"] = "sessionToken"
        spec["awsBedrock"] = bedrock
        if api_base:
            spec["baseURL"] = str(api_base)
    elif prefix in ("vertex_ai", "vertex_ai_beta"):
        project, location = params.get("vertex_project"), params.get("vertex_location")
        if not project or not location:
            b.warn(f"{where}: vertex_ai without `vertex_project` and `vertex_location` not "
                   "mapped")
            return None
        upstream = upstream.removeprefix("anthropic/").removeprefix("gemini/")
        publisher = "Anthropic" if upstream.startswith("claude") else "Google"
        base = "vertex-claude" if publisher == "Anthropic" else "vertex"
        spec = {"type": "GCPVertexAI", "gcpVertexAI": {"project": str(project),
                                                        "region": str(location),
                                                        "publisher": publisher}}
        credentials = params.get("vertex_credentials")
        if isinstance(credentials, str) and not credentials.startswith(_LITELLM_ENV):
            b.warn(f"{where}: vertex_credentials file {credentials!r} not imported; put it in "
                   "Secret 'vertex-service-account' as `key.json`")
            secret = {"name": "vertex-service-account", "key": "key.json"}
        else:
            secret = b.secret_ref(where, credentials, _LITELLM_ENV, "key.json",
                                  "vertex-service-account")
    elif prefix in ("azure", "azure_ai"):
        if prefix == "azure_ai" or not api_base or not params.get("api_version"):
            b.warn(f"{where}: {prefix} without `api_base` and `api_version` not mapped")
            return None
        base = "azure"
        spec = {"type": "AzureOpenAI", "baseURL": str(api_base),
                "azureOpenAI": {"apiVersion": str(params["api_version"])}}
        secret = b.secret_ref(where, params.get("api_key"), _LITELLM_ENV, "apiKey",
                              "azure-openai-api-key") or {"name": "azure-openai-api-key",
                                                          "key": "apiKey"}
    else:
        b.warn(f"{where}: model {model!r}: provider {prefix or 'unknown'!r} not mapped")
        return None
    if secret is not None:
        spec["secretRef"] = secret
    timeout = params.get("timeout")
    if isinstance(timeout, int | float) and 1 <= timeout <= 7200:
        spec["timeouts"] = {"totalSeconds": int(timeout)}
    for key in sorted(set(params) - _LITELLM_HANDLED):
        b.warn(f"{where}: litellm_params.{key} not mapped")
    cred = b.credential(base, spec)
    if spec["type"] == "AzureOpenAI":
        name = public or upstream
        if cred.deployments.get(name, upstream) != upstream:
            b.warn(f"{where}: model {name!r} already served by deployment "
                   f"{cred.deployments[name]!r}; deployment {upstream!r} not mapped")
        else:
            cred.deployments[name] = upstream
        return f"{cred.name}/{name}"
    cred.models.append(upstream)
    if public and public != upstream:
        b.warn(f"{where}: alias {public!r} → {upstream!r} not mapped; callers request "
               f"{upstream!r}")
    return f"{cred.name}/{upstream}"


# --- Bifrost ----------------------------------------------------------------------------------

_BIFROST_ENV = "env."
_BIFROST_TYPES = {"openai": "OpenAI", "anthropic": "Anthropic", "bedrock": "AWSBedrock",
                  "vertex": "GCPVertexAI", "azure": "AzureOpenAI"}
_BIFROST_COMPATIBLE = ("ollama", "groq", "mistral", "cerebras", "sgl", "openrouter",
                       "parasail", "perplexity")
_PERIODS = {"1d": "Daily", "24h": "Daily", "1w": "Weekly", "7d": "Weekly", "1M": "Monthly",
            "30d": "Monthly"}


def from_bifrost(config: Any, namespace: str = "default") -> Imported:
    """A Bifrost config (parsed JSON) → ProviderCredentials, VirtualKeys and warnings."""
    if not isinstance(config, Mapping):
        raise ImportError_("a Bifrost config is a JSON object with `providers`")
    b = _Builder(namespace)
    providers = config.get("providers") or {}
    if not isinstance(providers, Mapping):
        raise ImportError_("`providers` must be an object")
    names: dict[str, list[str]] = {}
    for provider, body in sorted(providers.items()):
        if not isinstance(body, Mapping):
            b.warn(f"providers.{provider}: not an object, skipped")
            continue
        names[provider] = _bifrost_provider(b, str(provider), body)
    imported = b.result()
    governance = config.get("governance") or {}
    if isinstance(governance, Mapping):
        imported.virtual_keys = _bifrost_keys(b, governance, names, namespace)
    for key in sorted(set(config) - {"providers", "governance", "$schema"}):
        b.warn(f"{key}: not mapped")
    return imported


def _bifrost_provider(b: _Builder, provider: str, body: Mapping[str, Any]) -> list[str]:
    network = body.get("network_config") or {}
    base_url = network.get("base_url") if isinstance(network, Mapping) else None
    timeout = network.get("default_request_timeout_in_seconds") if isinstance(
        network, Mapping) else None
    for key in sorted(set(network) - {"base_url", "default_request_timeout_in_seconds"}
                      if isinstance(network, Mapping) else ()):
        b.warn(f"providers.{provider}.network_config.{key}: not mapped")
    for key in sorted(set(body) - {"keys", "network_config"}):
        b.warn(f"providers.{provider}.{key}: not mapped")
    kind = _BIFROST_TYPES.get(provider)
    if kind is None and provider in _BIFROST_COMPATIBLE and base_url:
        kind = "OpenAICompatible"
    if kind is None:
        b.warn(f"providers.{provider}: provider not mapped"
               + (" (needs network_config.base_url)" if provider in _BIFROST_COMPATIBLE else ""))
        return []
    keys = body.get("keys") or [{}]
    created: list[str] = []
    weighted = [k for k in keys if isinstance(k, Mapping) and "weight" in k]
    if len(weighted) > 1:
        b.warn(f"providers.{provider}: key weights (load balancing) not mapped; each key "
               "becomes its own ProviderCredential")
    for index, key in enumerate(keys):
        where = f"providers.{provider}.keys[{index}]"
        if not isinstance(key, Mapping):
            b.warn(f"{where}: not an object, skipped")
            continue
        name = _bifrost_key(b, where, provider, kind, key, base_url, timeout)
        if name and name not in created:
            created.append(name)
    return created


def _bifrost_key(b: _Builder, where: str, provider: str, kind: str, key: Mapping[str, Any],
                 base_url: Any, timeout: Any) -> str | None:
    spec: dict[str, Any] = {"type": kind}
    if base_url:
        spec["baseURL"] = str(base_url)
    models = [str(m) for m in key.get("models") or []]
    deployments: dict[str, str] = {}
    handled = {"value", "models", "weight", "id", "name"}
    default_secret = f"{provider}-api-key"
    if kind == "AWSBedrock":
        handled.add("bedrock_key_config")
        conf = key.get("bedrock_key_config") or {}
        if not conf.get("region"):
            b.warn(f"{where}: bedrock_key_config.region missing, not mapped")
            return None
        bedrock: dict[str, Any] = {"region": str(conf["region"])}
        if conf.get("secret_key"):
            secret = b.secret_ref(where, conf["secret_key"], _BIFROST_ENV, "secretAccessKey",
                                  "bedrock-aws-keys")
            env = _env_ref(conf["secret_key"], _BIFROST_ENV)
            if env and secret:
                secret["name"] = _slug(env.replace("SECRET_ACCESS_KEY", "KEYS"))
            spec["secretRef"] = secret
            bedrock["accessKeyIdKey"] = "accessKeyId"
            if conf.get("session_token"):
                bedrock["sessionTokenKey"] = "sessionToken"
            b.warn(f"{where}: the AWS access key id and secret access key must be entries "
                   f"`accessKeyId` and `secretAccessKey` of Secret {spec['secretRef']['name']!r}")
        spec["awsBedrock"] = bedrock
        for extra in sorted(set(conf) - {"region", "access_key", "secret_key", "session_token"}):
            b.warn(f"{where}: bedrock_key_config.{extra} not mapped")
    elif kind == "GCPVertexAI":
        handled.add("vertex_key_config")
        conf = key.get("vertex_key_config") or {}
        project, region = conf.get("project_id"), conf.get("region")
        if not project or not region:
            b.warn(f"{where}: vertex_key_config.project_id/region missing, not mapped")
            return None
        publisher = "Anthropic" if models and all(m.startswith("claude") for m in models) \
            else "Google"
        spec["gcpVertexAI"] = {"project": str(project), "region": str(region),
                               "publisher": publisher}
        secret = b.secret_ref(where, conf.get("auth_credentials"), _BIFROST_ENV, "key.json",
                              "vertex-service-account")
        if secret:
            spec["secretRef"] = secret
        provider = "vertex-claude" if publisher == "Anthropic" else "vertex"
    elif kind == "AzureOpenAI":
        handled.add("azure_key_config")
        conf = key.get("azure_key_config") or {}
        if not conf.get("endpoint") or not conf.get("api_version"):
            b.warn(f"{where}: azure_key_config.endpoint/api_version missing, not mapped")
            return None
        spec["baseURL"] = str(conf["endpoint"])
        spec["azureOpenAI"] = {"apiVersion": str(conf["api_version"])}
        deployments = {str(m): str(d) for m, d in (conf.get("deployments") or {}).items()}
        for model in models:
            deployments.setdefault(model, model)
        if not deployments:
            b.warn(f"{where}: no models or deployments, not mapped")
            return None
        default_secret = "azure-openai-api-key"
    if kind not in ("AWSBedrock", "GCPVertexAI"):
        secret = b.secret_ref(where, key.get("value"), _BIFROST_ENV, "apiKey", default_secret)
        if secret is None and kind != "OpenAICompatible":
            secret = {"name": _slug(default_secret), "key": "apiKey"}
        if secret:
            spec["secretRef"] = secret
    if isinstance(timeout, int) and 1 <= timeout <= 7200:
        spec["timeouts"] = {"totalSeconds": timeout}
    for extra in sorted(set(key) - handled):
        b.warn(f"{where}: {extra} not mapped")
    cred = b.credential(provider, spec)
    cred.models.extend(models)
    cred.deployments.update(deployments)
    return cred.name


def _usd(value: Any) -> str | None:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.000001")).normalize()
    except (InvalidOperation, ValueError):
        return None
    return format(amount, "f") if amount >= 0 else None


def _by_id(items: Any) -> dict[str, Mapping[str, Any]]:
    return {str(i.get("id")): i for i in items or [] if isinstance(i, Mapping)}


def _bifrost_keys(b: _Builder, governance: Mapping[str, Any], providers: dict[str, list[str]],
                  namespace: str) -> list[dict[str, Any]]:
    budgets = _by_id(governance.get("budgets"))
    limits = _by_id(governance.get("rate_limits"))
    for section in sorted(set(governance) - {"virtual_keys", "budgets", "rate_limits"}):
        b.warn(f"governance.{section}: not mapped (budgets and limits apply per VirtualKey)")
    result, used = [], set()
    for index, vk in enumerate(governance.get("virtual_keys") or []):
        if not isinstance(vk, Mapping):
            continue
        label = vk.get("name") or vk.get("id") or str(index)
        where = f"governance.virtual_keys[{index}] ({label})"
        name, n = _slug(str(label)), 2
        while name in used:
            name, n = f"{_slug(str(label), NAME_MAX - 3)}-{n}", n + 1
        used.add(name)
        spec: dict[str, Any] = {}
        if vk.get("customer_id"):
            spec["customerId"] = re.sub(r"[^-A-Za-z0-9_.]", "_", str(vk["customer_id"]))
        token = vk.get("value")
        if isinstance(token, str) and token and not token.startswith(_BIFROST_ENV):
            spec["tokenSHA256"] = token_sha256(token)
        else:
            b.warn(f"{where}: no inline token; the operator generates one (or set tokenSHA256 "
                   "with `tollgate hash-key`)")
        budget = budgets.get(str(vk.get("budget_id"))) if vk.get("budget_id") else None
        if budget is not None:
            max_usd, period = _usd(budget.get("max_limit")), _PERIODS.get(
                str(budget.get("reset_duration")))
            if max_usd is None or period is None:
                b.warn(f"{where}: budget {budget.get('id')!r} (reset_duration "
                       f"{budget.get('reset_duration')!r}) not mapped")
            else:
                spec["budget"] = {"maxUSD": max_usd, "period": period}
        limit = limits.get(str(vk.get("rate_limit_id"))) if vk.get("rate_limit_id") else None
        if limit is not None:
            rate: dict[str, int] = {}
            for src, dst in (("request", "requestsPerMinute"), ("token", "tokensPerMinute")):
                value, reset = limit.get(f"{src}_max_limit"), limit.get(f"{src}_reset_duration")
                if value is None:
                    continue
                if reset == "1m" and isinstance(value, int) and value >= 1:
                    rate[dst] = value
                else:
                    b.warn(f"{where}: {src} limit {value} per {reset!r} not mapped (only "
                           "per-minute limits are)")
            if rate:
                spec["rateLimit"] = rate
        allowed_providers, allowed_models = [], []
        for pc in vk.get("provider_configs") or []:
            if not isinstance(pc, Mapping):
                continue
            creds = providers.get(str(pc.get("provider")), [])
            if not creds:
                b.warn(f"{where}: provider {pc.get('provider')!r} has no imported credential")
            allowed_providers.extend(c for c in creds if c not in allowed_providers)
            allowed_models.extend(str(m) for m in pc.get("allowed_models") or [])
            if pc.get("weight") is not None:
                b.warn(f"{where}: provider weight for {pc.get('provider')!r} not mapped")
        if allowed_providers:
            spec["allowedProviders"] = allowed_providers
        if allowed_models:
            spec["allowedModels"] = sorted(set(allowed_models))
        if vk.get("is_active") is False:
            spec["enabled"] = False
        for extra in sorted(set(vk) - {"id", "name", "value", "customer_id", "budget_id",
                                       "rate_limit_id", "provider_configs", "is_active",
                                       "description"}):
            b.warn(f"{where}: {extra} not mapped")
        result.append(_object("VirtualKey", name, namespace, spec))
    return result


# --- files --------------------------------------------------------------------------------------


def load_source(kind: str, text: str) -> Any:
    """Parse the input; `ImportError_` when it is not valid YAML/JSON."""
    try:
        return json.loads(text) if kind == "bifrost" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ImportError_(f"cannot parse the {kind} config: {exc}") from exc


def convert(kind: str, config: Any, namespace: str = "default") -> Imported:
    if kind == "litellm":
        return from_litellm(config, namespace)
    if kind == "bifrost":
        return from_bifrost(config, namespace)
    raise ImportError_(f"unknown source {kind!r}; one of {', '.join(SOURCES)}")


def dump_manifests(objects: Iterable[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(objects), sort_keys=False, default_flow_style=False)


def import_main(kind: str, path: str, *, output: str | None = None,
                namespace: str = "default", stdout: Any = None, stderr: Any = None) -> int:
    """Write the manifests to `output` (a folder: providers.yaml, virtual-keys.yaml) or stdout;
    one `warning:` line per unmapped item on stderr. 1 only when the input can't be read."""
    import sys
    from pathlib import Path

    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        text = Path(path).read_text("utf-8")
        imported = convert(kind, load_source(kind, text), namespace)
    except (OSError, UnicodeDecodeError, ImportError_) as exc:
        print(f"error: {path}: {exc}", file=err)
        return 1
    for warning in imported.warnings:
        print(f"warning: {warning}", file=err)
    if output is None:
        out.write(dump_manifests(imported.manifests()))
        return 0
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    header = f"# Imported from {kind} config {Path(path).name} by `tollgate import`.\n"
    for name, objects in (("providers.yaml", imported.provider_credentials),
                          ("virtual-keys.yaml", imported.virtual_keys)):
        if objects:
            (folder / name).write_text(header + dump_manifests(objects), "utf-8")
    return 0
