"""Stage 1 — authenticate: bearer token → SHA-256 → virtual key. The token is dropped here."""

from __future__ import annotations

import hashlib
import time

from tollgate.gateway.errors import AuthenticationFailed
from tollgate.gateway.pipeline.call import Call

__all__ = ["authenticate", "token_from_headers"]


def token_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    """`Authorization: Bearer <token>` or `x-api-key: <token>` (Anthropic's spelling)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


def authenticate(call: Call) -> None:
    token, call.token = call.token, None
    if not token:
        raise AuthenticationFailed(
            "missing API key: send your Tollgate virtual key as `Authorization: Bearer <key>`"
        )
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    key = call.snapshot.keys_by_hash.get(digest)
    if key is None:
        raise AuthenticationFailed("invalid API key: this virtual key is not known to the gateway")
    if not key.config.enabled:
        raise AuthenticationFailed(f"virtual key {key.id!r} is disabled", code="key_disabled")
    if key.expires_at is not None and time.time() >= key.expires_at:
        raise AuthenticationFailed(f"virtual key {key.id!r} has expired", code="key_expired")
    call.key = key
