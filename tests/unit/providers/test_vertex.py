"""The Vertex adapter's own jobs: Gemini usage into OpenAI accounting, Google error bodies, and
OAuth tokens minted by google-auth (against the fake token endpoint), cached and refreshed
before they expire."""

from __future__ import annotations

import pytest

from tests.fakes.vertex_upstream import running_fake_vertex
from tollgate.gateway.errors import UpstreamServerError, UpstreamUnavailable
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.vertex import AccessToken, error_fields, parse_gemini_usage


def test_prompt_tokens_include_the_cached_ones_and_thoughts_are_output():
    usage = parse_gemini_usage({"promptTokenCount": 10_000, "cachedContentTokenCount": 4_000,
                                "candidatesTokenCount": 300, "thoughtsTokenCount": 200,
                                "toolUsePromptTokenCount": 50, "totalTokenCount": 10_550})
    assert usage == Usage(input_tokens=10_050, output_tokens=500, cached_input_tokens=4_000,
                          reasoning_tokens=200)


def test_absent_candidates_count_as_zero():
    assert parse_gemini_usage({"promptTokenCount": 7, "thoughtsTokenCount": 3}) == Usage(
        input_tokens=7, output_tokens=3, reasoning_tokens=3)
    with pytest.raises(UpstreamServerError):
        parse_gemini_usage({"promptTokenCount": -1})


def test_google_and_anthropic_error_bodies():
    google = error_fields(b'{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}',
                          None)
    assert (google.message, google.code) == ("bad", "INVALID_ARGUMENT")
    claude = error_fields(b'{"type":"error","error":{"type":"overloaded_error",'
                          b'"message":"busy"}}', None)
    assert (claude.message, claude.code) == ("busy", "overloaded_error")


async def test_a_token_is_minted_once_and_reused_while_fresh():
    with running_fake_vertex(token_lifetime=3600) as fake:
        token = AccessToken(fake.service_account())
        first = await token.get()
        assert first.startswith("ya29.fake-")
        assert await token.get() == first
        assert fake.tokens_minted == 1
        assert "ya29" not in repr(token)


async def test_a_token_close_to_expiry_is_refreshed_before_use():
    with running_fake_vertex(token_lifetime=60) as fake:  # inside the five-minute margin
        token = AccessToken(fake.service_account())
        first = await token.get()
        second = await token.get()
        assert first != second and fake.tokens_minted == 2


async def test_a_key_the_token_endpoint_refuses_is_a_credentials_problem():
    with running_fake_vertex() as fake, running_fake_vertex() as other:
        info = {**other.service_account(), "token_uri": fake.token_uri}  # wrong private key
        with pytest.raises(UpstreamUnavailable, match="access token"):
            await AccessToken(info).get()
