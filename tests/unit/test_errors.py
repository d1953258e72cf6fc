"""Every error renders in both inbound shapes; Anthropic's type follows the status table."""

from __future__ import annotations

import pytest

from tollgate.gateway.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    InvalidRequest,
    ModelNotFound,
    NotReady,
    PayloadTooLarge,
    PermissionDenied,
    TollgateError,
    UpstreamClientError,
    UpstreamOverloaded,
    UpstreamServerError,
    UpstreamTimeout,
)


@pytest.mark.parametrize(("error", "kind"), [
    (InvalidRequest("bad"), "invalid_request_error"),
    (PayloadTooLarge("big"), "invalid_request_error"),
    (AuthenticationFailed("who"), "authentication_error"),
    (PermissionDenied("no"), "permission_error"),
    (ModelNotFound("gone"), "not_found_error"),
    (BudgetExceeded("spent"), "rate_limit_error"),
    (NotReady("wait"), "api_error"),
    (UpstreamServerError("boom"), "api_error"),
    (UpstreamTimeout("slow"), "timeout_error"),
    (UpstreamOverloaded("busy"), "overloaded_error"),
    (UpstreamClientError("nope", status=422), "invalid_request_error"),
    (TollgateError("oops"), "api_error"),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v)
def test_the_anthropic_rendering(error: TollgateError, kind: str):
    assert error.to_anthropic() == {"type": "error",
                                    "error": {"type": kind, "message": error.message}}


def test_the_openai_rendering_is_unchanged():
    error = ModelNotFound("gone", param="model")
    assert error.to_openai() == {"error": {"message": "gone", "type": "invalid_request_error",
                                           "param": "model", "code": "model_not_found"}}
