"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, Groq …): wire shape "openai".

The wire body is forwarded with only `model` replaced (and `stream_options.include_usage`
forced on for streams, so every stream is metered); the reply body is returned byte for byte
and stream `data:` lines become events without being parsed — except the usage chunk, found by
a byte search and parsed once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollgate.gateway.config.models import OpenAICompatibleProvider, OpenAIProvider
from tollgate.gateway.errors import UpstreamServerError, UpstreamUnavailable
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.base import ChatStream, Reply, WireRequest
from tollgate.gateway.providers.credentials import Secret, resolve
from tollgate.gateway.providers.errors import ErrorFields, clean, upstream_error
from tollgate.gateway.translate.shapes.openai import DONE
from tollgate.gateway.translate.sse import Event
from tollgate.gateway.transport import Timeouts, Transport

__all__ = ["OpenAIAdapter", "error_fields", "parse_openai_usage", "token_count"]

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_DONE = b"[DONE]"


def token_count(value: Any, field: str) -> int:
    """A usage figure: missing is 0; anything but a non-negative integer is a broken reply."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UpstreamServerError(f"the provider reported an invalid `{field}` in its usage")
    return value


def parse_openai_usage(usage: dict[str, Any] | None) -> Usage | None:
    """OpenAI accounting is the canonical one: prompt includes cached, completion includes
    reasoning, so the figures are taken as they are."""
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    return Usage(
        input_tokens=token_count(usage.get("prompt_tokens"), "prompt_tokens"),
        output_tokens=token_count(usage.get("completion_tokens"), "completion_tokens"),
        cached_input_tokens=token_count(prompt_details.get("cached_tokens"), "cached_tokens"),
        reasoning_tokens=token_count(
            completion_details.get("reasoning_tokens"), "reasoning_tokens"
        ),
    )


def error_fields(body: bytes, secret: Secret | None) -> ErrorFields:
    """OpenAI's explanation of a 4xx (`{"error": {message, code, param}}`)."""
    try:
        error = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return ErrorFields()
    if not isinstance(error, dict):
        return ErrorFields()
    return ErrorFields(clean(error.get("message"), 1000, secret) or "",
                       clean(error.get("code"), 200, secret),
                       clean(error.get("param"), 200, secret))


class OpenAIAdapter:
    """Adapter for `openai` and `openai-compatible` provider entries."""

    wire = "openai"

    def __init__(self, config: OpenAIProvider | OpenAICompatibleProvider, transport: Transport,
                 catalog_models: tuple[str, ...]) -> None:
        self.name = config.name
        self.type = config.type
        self._config = config
        self._transport = transport
        self._base = config.base_url.rstrip("/")
        self._secret = resolve(config.api_key) if config.api_key is not None else None
        self.available = config.api_key is None or self._secret is not None
        self._models = config.models or catalog_models
        t = config.timeouts
        self._timeouts = Timeouts(t.connect_seconds, t.first_byte_seconds, t.total_seconds)
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if self._secret is not None:
            self._headers["authorization"] = f"Bearer {self._secret.reveal()}"
        organization = getattr(config, "organization", None)
        if organization:
            self._headers["openai-organization"] = organization

    def served_models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def _check_available(self) -> None:
        if not self.available:
            raise UpstreamUnavailable(
                f"provider {self.name!r} has no API key configured (see its `apiKey` reference)"
            )

    def _url(self, model: str, operation: str) -> str:
        """Where `operation` ("chat/completions", "embeddings") for `model` is served."""
        return f"{self._base}/{operation}"

    def _drop(self, event: Event) -> bool:
        """A stream event the provider adds that no OpenAI client expects (none here)."""
        return False

    async def _post(self, url: str, body: dict[str, Any]) -> Reply:
        self._check_available()
        reply = await self._transport.post(url, self._headers, orjson.dumps(body), self._timeouts)
        if reply.status >= 300:
            raise upstream_error(self.name, reply.status, reply.headers,
                                 error_fields(reply.body, self._secret))
        try:
            data = orjson.loads(reply.body)
            usage = parse_openai_usage(data.get("usage"))
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply") from exc
        return Reply(body=reply.body, usage=usage, data=data)

    async def chat(self, request: WireRequest, model: str) -> Reply:
        return await self._post(self._url(model, "chat/completions"),
                                {**request.body, "model": model})

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        return await self._post(self._url(model, "embeddings"), {**body, "model": model})

    async def chat_stream(self, request: WireRequest, model: str) -> ChatStream:
        self._check_available()
        body = request.body
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        payload = {**body, "model": model, "stream": True, "stream_options": options}
        headers = {**self._headers, "accept": "text/event-stream"}
        reply = await self._transport.open_stream(
            self._url(model, "chat/completions"), headers, orjson.dumps(payload), self._timeouts
        )
        if reply.status >= 300:
            try:
                raw = await reply.read()
            finally:
                reply.close()
            raise upstream_error(self.name, reply.status, reply.headers,
                                 error_fields(raw, self._secret))
        stream = ChatStream(closer=reply.close)
        return stream.bind(self._events(reply.lines(), stream, request.usage_event))

    async def _events(self, lines: AsyncIterator[bytes], stream: ChatStream,
                      usage_event: bool) -> AsyncIterator[Event]:
        """The provider's `data:` lines as events, reading usage on the way."""
        async for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, `event:` lines
            data = line[5:].strip()
            if data == _DONE:
                yield DONE
                return
            event = Event(data)
            if _USAGE_OBJECT.search(data):
                try:
                    chunk = event.json()
                except orjson.JSONDecodeError:
                    chunk = {}
                usage = parse_openai_usage(chunk.get("usage")) if isinstance(chunk, dict) \
                    else None
                if usage is not None:
                    stream.usage = usage
                    if not usage_event and not chunk.get("choices"):
                        continue  # nobody downstream wants the usage-only chunk
            if self._drop(event):
                continue
            yield event
        raise UpstreamServerError(f"provider {self.name!r} ended the stream without [DONE]")
