"""Build GatewayConfig documents (plain dicts) for tests."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["config_doc", "key_entry", "sha256"]


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_entry(key_id: str, token: str, **fields: Any) -> dict[str, Any]:
    """A virtualKeys entry for `token` (only its hash goes into the config)."""
    return {"id": key_id, "tokenSHA256": sha256(token), **fields}


def config_doc(
    providers: list[dict[str, Any]],
    keys: list[dict[str, Any]],
    **sections: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "providers": providers,
        "virtualKeys": keys,
        **sections,
    }
