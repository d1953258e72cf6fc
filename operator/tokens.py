"""What to do about a VirtualKey's generated token Secret: create it, rotate it, or drop the
previous token once the overlap window has passed.

Pure decisions from the objects as the indexes hold them; the reconciler carries them out
through `kube`. Everything needed to decide again after a restart lives on the Secret itself:

- `tollgate.dev/rotated-for` — the VirtualKey's `tollgate.dev/rotate-token` value last honoured.
  Setting that annotation to any new value (a date, a ticket number) asks for one rotation.
- `tollgate.dev/token-rotated-at` — when `token` was generated; `previousToken` (the token it
  replaced) is dropped `overlap` later, so clients have that long to switch.

Only Secrets owned by the VirtualKey are ever changed: a user's own Secret that happens to
carry the generated name is read, never rotated.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.operator.keys import PREVIOUS_TOKEN_KEY, TOKEN_KEY, generated_secret_name, new_token
from tollgate.operator.models import GROUP

__all__ = [
    "ROTATED_AT_ANNOTATION",
    "ROTATED_FOR_ANNOTATION",
    "ROTATE_ANNOTATION",
    "VIRTUAL_KEY_LABEL",
    "CreateSecret",
    "DropPrevious",
    "RotateSecret",
    "TokenAction",
    "generates_token",
    "owned_by",
    "plan",
    "previous_token_expiry",
]

ROTATE_ANNOTATION = f"{GROUP}/rotate-token"
ROTATED_FOR_ANNOTATION = f"{GROUP}/rotated-for"
ROTATED_AT_ANNOTATION = f"{GROUP}/token-rotated-at"
VIRTUAL_KEY_LABEL = f"{GROUP}/virtual-key"


@dataclass(frozen=True)
class CreateSecret:
    body: dict[str, Any]


@dataclass(frozen=True)
class RotateSecret:
    namespace: str
    name: str
    patch: dict[str, Any]
    rotated_at: str


@dataclass(frozen=True)
class DropPrevious:
    namespace: str
    name: str
    patch: dict[str, Any]


TokenAction = CreateSecret | RotateSecret | DropPrevious


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def generates_token(virtual_key: Mapping[str, Any]) -> bool:
    """A key with neither `tokenSHA256` nor `tokenSecretRef` gets a generated token."""
    spec = virtual_key.get("spec") or {}
    return "tokenSHA256" not in spec and "tokenSecretRef" not in spec


def owned_by(secret: Mapping[str, Any], virtual_key: Mapping[str, Any]) -> bool:
    uid = (virtual_key.get("metadata") or {}).get("uid")
    owners = (secret.get("metadata") or {}).get("ownerReferences") or ()
    return uid is not None and any(o.get("uid") == uid for o in owners)


def _annotation(body: Mapping[str, Any], key: str) -> str | None:
    value = ((body.get("metadata") or {}).get("annotations") or {}).get(key)
    return None if value is None else str(value)


def token_secret(virtual_key: Mapping[str, Any], owner: Mapping[str, Any], token: str,
                 now: datetime) -> dict[str, Any]:
    """The generated Secret (`tollgate-vk-<name>`, entry `token`), owned by the VirtualKey."""
    metadata = virtual_key["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": generated_secret_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": {
                "app.kubernetes.io/name": "tollgate",
                "app.kubernetes.io/managed-by": "tollgate-operator",
                VIRTUAL_KEY_LABEL: metadata["name"],
            },
            "annotations": {
                ROTATED_FOR_ANNOTATION: _annotation(virtual_key, ROTATE_ANNOTATION) or "",
                ROTATED_AT_ANNOTATION: _format(now),
            },
            "ownerReferences": [dict(owner)],
        },
        "data": {TOKEN_KEY: _b64(token)},
    }


def previous_token_expiry(secret: Mapping[str, Any], overlap: timedelta) -> datetime | None:
    """When the previous token of a generated Secret stops working (None: there is none)."""
    if not (secret.get("data") or {}).get(PREVIOUS_TOKEN_KEY):
        return None
    rotated_at = _parse(_annotation(secret, ROTATED_AT_ANNOTATION))
    return (rotated_at or datetime.min.replace(tzinfo=UTC)) + overlap


def plan(
    virtual_key: Mapping[str, Any],
    secret: Mapping[str, Any] | None,
    owner: Mapping[str, Any],
    now: datetime,
    overlap: timedelta,
    generate: Callable[[], str] = new_token,
) -> TokenAction | None:
    """The one step that brings a VirtualKey's generated token Secret closer to what it asks
    for, or None when nothing is to be done. `owner` is the ownerReference to the key."""
    metadata = virtual_key.get("metadata") or {}
    if metadata.get("deletionTimestamp") or not generates_token(virtual_key):
        return None
    if secret is None:
        return CreateSecret(token_secret(virtual_key, owner, generate(), now))
    if not owned_by(secret, virtual_key):
        return None
    secret_meta = secret["metadata"]
    wanted = _annotation(virtual_key, ROTATE_ANNOTATION)
    data = secret.get("data") or {}
    if wanted is not None and wanted != (_annotation(secret, ROTATED_FOR_ANNOTATION) or ""):
        rotated_at = _format(now)
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": secret_meta.get("resourceVersion"),
                "annotations": {ROTATED_FOR_ANNOTATION: wanted, ROTATED_AT_ANNOTATION: rotated_at},
            },
            "data": {TOKEN_KEY: _b64(generate())},
        }
        if data.get(TOKEN_KEY):
            patch["data"][PREVIOUS_TOKEN_KEY] = data[TOKEN_KEY]
        return RotateSecret(secret_meta["namespace"], secret_meta["name"], patch, rotated_at)
    expiry = previous_token_expiry(secret, overlap)
    if expiry is not None and expiry <= now:
        return DropPrevious(secret_meta["namespace"], secret_meta["name"], {
            "metadata": {"resourceVersion": secret_meta.get("resourceVersion")},
            "data": {PREVIOUS_TOKEN_KEY: None},
        })
    return None
