"""The Bedrock adapter's own jobs: usage into OpenAI accounting (cache classes added back, the
duplicate *Count fields never), AWS exceptions into the one error tree, SigV4 signing."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tollgate.gateway.errors import (
    UpstreamClientError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.bedrock import (
    SigV4Signer,
    error_fields,
    error_status,
    parse_bedrock_usage,
)
from tollgate.gateway.providers.errors import upstream_error


def test_input_tokens_exclude_the_cache_classes_and_duplicates_are_never_added():
    usage = parse_bedrock_usage({
        "inputTokens": 1000, "outputTokens": 200, "totalTokens": 3600,
        "cacheReadInputTokens": 2000, "cacheWriteInputTokens": 400,
        "cacheReadInputTokenCount": 2000, "cacheWriteInputTokenCount": 400,
        "cacheDetails": [{"ttl": "5m", "inputTokens": 300}, {"ttl": "1h", "inputTokens": 100}]})
    assert usage == Usage(input_tokens=3400, output_tokens=200, cached_input_tokens=2000,
                          cache_write_tokens=400, cache_write_1h_tokens=100)
    assert usage.total_tokens == 3600


def test_missing_cache_fields_are_zero_and_bad_figures_a_broken_reply():
    assert parse_bedrock_usage({"inputTokens": 5, "outputTokens": 1}) == Usage(
        input_tokens=5, output_tokens=1)
    assert parse_bedrock_usage(None) is None
    with pytest.raises(UpstreamServerError):
        parse_bedrock_usage({"inputTokens": "many"})


@pytest.mark.parametrize(("name", "status", "kind"), [
    ("ThrottlingException", 400, UpstreamRateLimited),
    ("throttlingException", 500, UpstreamRateLimited),
    ("ServiceQuotaExceededException", 400, UpstreamRateLimited),
    ("ServiceUnavailableException", 503, UpstreamServerError),
    ("ModelNotReadyException", 429, UpstreamServerError),
    ("modelStreamErrorException", 500, UpstreamServerError),
    ("ModelTimeoutException", 408, UpstreamTimeout),
    ("AccessDeniedException", 403, UpstreamUnavailable),
    ("ExpiredTokenException", 400, UpstreamUnavailable),
    ("ValidationException", 400, UpstreamClientError),
    ("ResourceNotFoundException", 404, UpstreamClientError),
])
def test_aws_exceptions_map_by_name_whatever_the_status(name: str, status: int, kind: type):
    error = upstream_error("b", error_status(name, status), {}, None)
    assert isinstance(error, kind)
    retryable = kind is not UpstreamClientError
    assert error.retryable is retryable


def test_the_exception_name_comes_from_the_header_or_the_body():
    name, fields = error_fields(b'{"message":"Too many tokens"}',
                                {"x-amzn-errortype": "ThrottlingException:http://x/"}, None)
    assert (name, fields.message) == ("ThrottlingException", "Too many tokens")
    name, _ = error_fields(b'{"__type":"com.amazon.coral#ValidationException"}', {}, None)
    assert name == "ValidationException"


async def test_the_signer_produces_a_signature_botocore_verifies():
    credentials = Credentials("AKIDEXAMPLE", "secret/key", "token-1")
    signer = SigV4Signer("eu-west-1", credentials)
    assert "secret" not in repr(signer)
    url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/eu.anthropic.x-v1:0/converse"
    frozen = await signer.credentials()
    headers = signer.sign(frozen, url, b'{"messages":[]}', {"content-type": "application/json"})
    assert headers["X-Amz-Security-Token"] == "token-1"
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/bedrock/aws4_request" in authorization
    # recompute independently: same request, same timestamp
    request = AWSRequest(method="POST", url=url, data=b'{"messages":[]}',
                         headers={k: v for k, v in headers.items() if k != "Authorization"})
    request.context["timestamp"] = headers["X-Amz-Date"]
    auth = SigV4Auth(credentials, "bedrock", "eu-west-1")
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                              request)
    assert authorization.endswith(f"Signature={expected}")
    assert not hmac.compare_digest(expected, hashlib.sha256(b"x").hexdigest())
