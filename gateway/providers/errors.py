"""A provider's non-2xx reply → the UpstreamError tree: the one status table for every adapter.

The adapter reads its own error body (each wire shape spells it differently) into ErrorFields,
bounded and with the provider key scrubbed; the status alone decides the class:

    401, 403  → UpstreamUnavailable   (the gateway's credentials; the caller can't fix it)
    408       → UpstreamTimeout
    429       → UpstreamRateLimited   (Retry-After kept)
    529       → UpstreamOverloaded    (Anthropic's "overloaded")
    5xx       → UpstreamServerError
    other 4xx → UpstreamClientError   (the provider's own message, passed to the caller)

Everything but UpstreamClientError is retryable: the router moves on to the next target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollgate.gateway.errors import (
    UpstreamClientError,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollgate.gateway.providers.credentials import Secret

__all__ = ["ErrorFields", "clean", "upstream_error"]


@dataclass(frozen=True, slots=True)
class ErrorFields:
    """What a provider said about a refused request (already bounded and scrubbed)."""

    message: str = ""
    code: str | None = None
    param: str | None = None


def clean(value: Any, limit: int, secret: Secret | None) -> str | None:
    """A provider-supplied string fit to show a caller: bounded, provider key scrubbed."""
    if not isinstance(value, str):
        return None
    value = value[:limit]
    return secret.scrub(value) if secret is not None else value


def upstream_error(provider: str, status: int, headers: dict[str, str],
                   fields: ErrorFields | None = None) -> UpstreamError:
    if status in (401, 403):
        return UpstreamUnavailable(
            f"provider {provider!r} rejected the gateway's credentials (HTTP {status})"
        )
    if status == 429:
        retry_after = headers.get("retry-after")
        extra = {"retry-after": retry_after} if retry_after else {}
        return UpstreamRateLimited(f"provider {provider!r} is rate limiting", headers=extra)
    if status == 408:
        return UpstreamTimeout(f"provider {provider!r} timed out (HTTP 408)")
    if status == 529:
        return UpstreamOverloaded(f"provider {provider!r} is overloaded (HTTP 529)")
    if status >= 500:
        return UpstreamServerError(f"provider {provider!r} failed (HTTP {status})")
    fields = fields or ErrorFields()
    return UpstreamClientError(
        fields.message or f"provider {provider!r} rejected the request (HTTP {status})",
        status=status, code=fields.code or "upstream_client_error", param=fields.param,
    )
