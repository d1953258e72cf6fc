"""Factories for custom-resource and Secret bodies, shaped as the API server returns them."""

from __future__ import annotations

import base64
from typing import Any

from tollgate.operator.keys import token_sha256

__all__ = ["provider_credential", "secret", "sha", "virtual_key"]


def sha(token: str) -> str:
    return token_sha256(token)


def virtual_key(name: str, namespace: str = "tenants", generation: int = 1,
                **spec: Any) -> dict[str, Any]:
    """A VirtualKey; with no token field at all it gets `tokenSHA256` of `tg-<name>`."""
    if not {"tokenSHA256", "tokenSecretRef", "generated"} & set(spec):
        spec["tokenSHA256"] = sha(f"tg-{namespace}-{name}")
    spec.pop("generated", None)
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "VirtualKey",
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "spec": spec,
    }


def provider_credential(name: str, namespace: str = "tenants", type_: str = "OpenAI",
                        **spec: Any) -> dict[str, Any]:
    if type_ in ("OpenAI", "Anthropic", "AzureOpenAI") and "secretRef" not in spec:
        spec["secretRef"] = {"name": f"{name}-api-key", "key": "apiKey"}
    if type_ == "OpenAICompatible":
        spec.setdefault("baseURL", f"http://{name}.ml.svc:8000/v1")
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ProviderCredential",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"type": type_, **spec},
    }


def secret(name: str, namespace: str = "tenants", **values: str) -> dict[str, Any]:
    """A Secret as the API returns it: base64 `data`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }
