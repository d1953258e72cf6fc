"""One exception tree for everything a caller can be told; each class knows its wire form.

    TollgateError                      (500 api_error)
    ├── InvalidRequest                 (400 invalid_request_error)
    │   └── PayloadTooLarge            (413 invalid_request_error / request_too_large)
    ├── AuthenticationFailed           (401 authentication_error / invalid_api_key)
    ├── PermissionDenied               (403 permission_error)
    ├── ModelNotFound                  (404 invalid_request_error / model_not_found)
    ├── RateLimited                    (429 rate_limit_error / rate_limit_exceeded)
    │   └── BudgetExceeded             (429 insufficient_quota / budget_exceeded)
    ├── NotReady                       (503 api_error / config_not_loaded)
    ├── GovernanceUnavailable          (503 api_error / store_unavailable)
    └── UpstreamError                  (502 api_error / upstream_error)
        ├── UpstreamConnectError       (502 … / upstream_unreachable)
        ├── UpstreamTimeout            (504 … / upstream_timeout)
        ├── UpstreamUnavailable        (503 … / upstream_unavailable)
        │   └── UpstreamCircuitOpen    (503 … / circuit_open; the target was skipped)
        ├── UpstreamRateLimited        (429 rate_limit_error / upstream_rate_limited)
        ├── UpstreamServerError        (502 … / upstream_server_error)
        ├── UpstreamOverloaded         (503 … / upstream_overloaded; Anthropic's 529)
        └── UpstreamClientError        (the upstream's 4xx, passed through)

Messages are written for the caller and never contain a token, a provider key or raw upstream
text that could carry one. `retryable` tells the router whether the next target may be tried.

Every error renders in both inbound shapes: `to_openai()` (`{"error": {message, type, param,
code}}`) and `to_anthropic()` (`{"type": "error", "error": {type, message}}`). Anthropic's error
type follows from the HTTP status through one table (`ANTHROPIC_TYPES`), the mirror of the
provider status table in providers/errors.py; a class may pin its own (`anthropic_type`).
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = [
    "ANTHROPIC_TYPES",
    "AuthenticationFailed",
    "BudgetExceeded",
    "InvalidRequest",
    "GovernanceUnavailable",
    "ModelNotFound",
    "NotReady",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "TollgateError",
    "UpstreamCircuitOpen",
    "UpstreamClientError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamOverloaded",
    "UpstreamRateLimited",
    "UpstreamServerError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""HTTP status → Anthropic error type; other 4xx are invalid_request_error, other 5xx api_error."""


class TollgateError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str = "internal_error"
    retryable: bool = False
    anthropic_type: str | None = None  # None: from ANTHROPIC_TYPES by status

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers: dict[str, str] = headers or {}

    def to_openai(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.to_openai())

    def to_anthropic(self) -> dict[str, Any]:
        kind = self.anthropic_type or ANTHROPIC_TYPES.get(self.status) or (
            "api_error" if self.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def anthropic_body(self) -> bytes:
        return orjson.dumps(self.to_anthropic())


class InvalidRequest(TollgateError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class AuthenticationFailed(TollgateError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(TollgateError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotFound(TollgateError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimited(TollgateError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    type = "insufficient_quota"
    code = "budget_exceeded"


class NotReady(TollgateError):
    status = 503
    code = "config_not_loaded"


class GovernanceUnavailable(TollgateError):
    """The budget/rate-limit store is unreachable and the key's policy is `deny`."""

    status = 503
    code = "store_unavailable"


class UpstreamError(TollgateError):
    """A provider attempt failed. Carries which target failed, for logs and headers."""

    status = 502
    code = "upstream_error"
    retryable = True


class UpstreamConnectError(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamCircuitOpen(UpstreamUnavailable):
    """The target's circuit breaker is open: it was skipped without a request."""

    code = "circuit_open"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamServerError(UpstreamError):
    code = "upstream_server_error"


class UpstreamOverloaded(UpstreamError):
    """The provider says it is overloaded (Anthropic's 529, `overloaded_error`): try elsewhere."""

    status = 503
    code = "upstream_overloaded"
    anthropic_type = "overloaded_error"


class UpstreamClientError(UpstreamError):
    """The provider refused the request itself (4xx): returned to the caller, never retried."""

    type = "invalid_request_error"
    code = "upstream_client_error"
    retryable = False
