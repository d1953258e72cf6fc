"""Anthropic's Messages API: wire shape "anthropic".

`POST {baseURL}/v1/messages` with `x-api-key` and `anthropic-version` (and the client's
`anthropic-beta`, when the pass-through forwards it); `POST /v1/messages/count_tokens` counts.
Streams are named SSE events, decoded by translate.sse; `message_start` and `message_delta` are
the only events parsed here (for usage), `error` ends the stream with the mapped UpstreamError,
and a stream must end with `message_stop`.

Usage, converted once into OpenAI accounting: Anthropic's `input_tokens` excludes cache reads
and writes, so input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens;
cached = cache reads; cache writes (and their one-hour part, from `cache_creation`) are kept so
they are priced at the write rate; reasoning = `output_tokens_details.thinking_tokens`
(already inside output_tokens). In a stream, `message_start` carries the input side and a
placeholder output count, and every `message_delta` carries cumulative figures: each field
present overrides the earlier one, never added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollgate.gateway.config.models import AnthropicProvider
from tollgate.gateway.errors import UpstreamClientError, UpstreamServerError, UpstreamUnavailable
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.base import ChatStream, Reply, WireRequest
from tollgate.gateway.providers.credentials import Secret, resolve
from tollgate.gateway.providers.errors import ErrorFields, clean, upstream_error
from tollgate.gateway.providers.openai import token_count
from tollgate.gateway.translate.sse import Event, SSEDecoder
from tollgate.gateway.transport import Timeouts, Transport

__all__ = ["ERROR_STATUS", "AnthropicAdapter", "error_fields", "parse_anthropic_usage"]

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""An Anthropic error type → the HTTP status it stands for (for `event: error` mid-stream)."""

_COUNTED = ("messages", "system", "tools", "tool_choice", "thinking")


def parse_anthropic_usage(usage: Any) -> Usage | None:
    """Anthropic's usage object → normalised Usage (see the module docstring)."""
    if not isinstance(usage, dict):
        return None
    plain = token_count(usage.get("input_tokens"), "input_tokens")
    reads = token_count(usage.get("cache_read_input_tokens"), "cache_read_input_tokens")
    writes = token_count(usage.get("cache_creation_input_tokens"),
                         "cache_creation_input_tokens")
    output = token_count(usage.get("output_tokens"), "output_tokens")
    breakdown = usage.get("cache_creation")
    writes_1h = 0
    if isinstance(breakdown, dict):
        writes_1h = min(writes, token_count(breakdown.get("ephemeral_1h_input_tokens"),
                                            "ephemeral_1h_input_tokens"))
    details = usage.get("output_tokens_details")
    thinking = 0
    if isinstance(details, dict):
        thinking = min(output, token_count(details.get("thinking_tokens"), "thinking_tokens"))
    return Usage(
        input_tokens=plain + reads + writes,
        output_tokens=output,
        cached_input_tokens=reads,
        reasoning_tokens=thinking,
        cache_write_tokens=writes,
        cache_write_1h_tokens=writes_1h,
    )


def error_fields(body: bytes, secret: Secret | None) -> ErrorFields:
    """Anthropic's explanation of a 4xx (`{"type": "error", "error": {type, message}}`)."""
    try:
        error = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return ErrorFields()
    if not isinstance(error, dict):
        return ErrorFields()
    return ErrorFields(clean(error.get("message"), 1000, secret) or "",
                       clean(error.get("type"), 200, secret))


class AnthropicAdapter:
    """Adapter for `anthropic` provider entries."""

    wire = "anthropic"

    def __init__(self, config: AnthropicProvider, transport: Transport,
                 catalog_models: tuple[str, ...]) -> None:
        self.name = config.name
        self.type = config.type
        self._transport = transport
        self._base = config.base_url.rstrip("/")
        self._secret = resolve(config.api_key) if config.api_key is not None else None
        self.available = config.api_key is None or self._secret is not None
        self._models = config.models or catalog_models
        t = config.timeouts
        self._timeouts = Timeouts(t.connect_seconds, t.first_byte_seconds, t.total_seconds)
        self._headers = {"content-type": "application/json", "accept": "application/json",
                         "anthropic-version": config.anthropic_version}
        if self._secret is not None:
            self._headers["x-api-key"] = self._secret.reveal()

    def served_models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def _check_available(self) -> None:
        if not self.available:
            raise UpstreamUnavailable(
                f"provider {self.name!r} has no API key configured (see its `apiKey` reference)"
            )

    def _headers_for(self, request: WireRequest, accept: str | None = None) -> dict[str, str]:
        headers = self._headers
        if request.headers or accept:
            headers = {**headers, **request.headers}
            if accept:
                headers["accept"] = accept
        return headers

    async def _post(self, path: str, request: WireRequest, payload: dict[str, Any]) -> Any:
        self._check_available()
        reply = await self._transport.post(self._base + path, self._headers_for(request),
                                           orjson.dumps(payload), self._timeouts)
        if reply.status >= 300:
            raise upstream_error(self.name, reply.status, reply.headers,
                                 error_fields(reply.body, self._secret))
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply") from exc
        if not isinstance(data, dict):
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply")
        return reply.body, data

    async def chat(self, request: WireRequest, model: str) -> Reply:
        payload = {**request.body, "model": model}
        payload.pop("stream", None)
        body, data = await self._post("/v1/messages", request, payload)
        return Reply(body=body, usage=parse_anthropic_usage(data.get("usage")), data=data)

    async def count_tokens(self, request: WireRequest, model: str) -> int:
        payload = {k: v for k, v in request.body.items() if k in _COUNTED}
        _, data = await self._post("/v1/messages/count_tokens", request,
                                   {**payload, "model": model})
        return token_count(data.get("input_tokens"), "input_tokens")

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        raise UpstreamClientError(f"provider {self.name!r} (Anthropic) does not serve "
                                  "embeddings", status=400, code="unsupported_for_provider")

    async def chat_stream(self, request: WireRequest, model: str) -> ChatStream:
        self._check_available()
        payload = {**request.body, "model": model, "stream": True}
        reply = await self._transport.open_stream(
            self._base + "/v1/messages", self._headers_for(request, "text/event-stream"),
            orjson.dumps(payload), self._timeouts)
        if reply.status >= 300:
            try:
                raw = await reply.read()
            finally:
                reply.close()
            raise upstream_error(self.name, reply.status, reply.headers,
                                 error_fields(raw, self._secret))
        stream = ChatStream(closer=reply.close)
        return stream.bind(self._events(reply.lines(), stream))

    async def _events(self, lines: AsyncIterator[bytes],
                      stream: ChatStream) -> AsyncIterator[Event]:
        decoder = SSEDecoder()
        figures: dict[str, Any] = {}
        async for line in lines:
            event = decoder.feed_line(line)
            if event is None:
                continue
            name = event.name
            if name == "message_start" or name == "message_delta":
                figures = self._merge_usage(event, figures)
                stream.usage = parse_anthropic_usage(figures)
            elif name == "error":
                raise self._stream_error(event)
            yield event
            if name == "message_stop":
                return
        raise UpstreamServerError(f"provider {self.name!r} ended the stream without "
                                  "message_stop")

    def _merge_usage(self, event: Event, figures: dict[str, Any]) -> dict[str, Any]:
        """Cumulative figures: every field a later event reports replaces the earlier one."""
        try:
            body = event.json()
            usage = body["message"]["usage"] if event.name == "message_start" \
                else body.get("usage")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamServerError(
                f"provider {self.name!r} sent a malformed {event.name} event") from exc
        if not isinstance(usage, dict):
            return figures
        return {**figures, **{k: v for k, v in usage.items() if v is not None}}

    def _stream_error(self, event: Event) -> Exception:
        try:
            error = event.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        kind = error.get("type") if isinstance(error, dict) else None
        status = ERROR_STATUS.get(kind, 500) if isinstance(kind, str) else 500
        return upstream_error(self.name, status, {}, error_fields(event.data, self._secret))
