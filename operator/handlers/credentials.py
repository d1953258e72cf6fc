"""ProviderCredential and Secret handlers: keep the indexes current and wake the render loop.

Secrets are read only through this index (STYLE pattern 14), never fetched inside a handler;
Helm releases, TLS and service-account Secrets are not kept (see `is_indexed_secret`).
"""

from __future__ import annotations

from typing import Any

import kopf

from tollgate.operator.models import GROUP, VERSION
from tollgate.operator.reconcile import (
    Reconciler,
    index_resource,
    index_secret,
    is_indexed_secret,
)

__all__ = [
    "RESOURCE",
    "credential_changed",
    "indexed_secret",
    "provider_credentials",
    "secret_changed",
    "secrets",
]

RESOURCE = (GROUP, VERSION, "providercredentials")


def indexed_secret(body: kopf.Body, **_: Any) -> bool:
    return is_indexed_secret(body)


@kopf.index(*RESOURCE)
def provider_credentials(body: kopf.Body, namespace: str | None, name: str, **_: Any
                         ) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): index_resource(body)}


@kopf.on.event(*RESOURCE)
def credential_changed(memo: kopf.Memo, **_: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    reconciler.request()


@kopf.index("v1", "secrets", when=indexed_secret)
def secrets(body: kopf.Body, namespace: str | None, name: str, **_: Any
            ) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): index_secret(body)}


@kopf.on.event("v1", "secrets", when=indexed_secret)
def secret_changed(memo: kopf.Memo, **_: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    reconciler.request()
