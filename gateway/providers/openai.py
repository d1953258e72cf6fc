"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, Groq …): pass-through, no translation.

The request body is forwarded with only `model` replaced (and `stream_options.include_usage`
forced on for streams, so every stream is metered); the reply body is returned byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollgate.gateway.config.models import OpenAICompatibleProvider, OpenAIProvider
from tollgate.gateway.errors import (
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.base import ChatStream, Reply
from tollgate.gateway.providers.credentials import Secret, resolve
from tollgate.gateway.transport import Timeouts, Transport

__all__ = ["OpenAIAdapter", "parse_openai_usage", "upstream_error"]

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_DONE = b"[DONE]"


def _token_count(value: Any, field: str) -> int:
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
        input_tokens=_token_count(usage.get("prompt_tokens"), "prompt_tokens"),
        output_tokens=_token_count(usage.get("completion_tokens"), "completion_tokens"),
        cached_input_tokens=_token_count(prompt_details.get("cached_tokens"), "cached_tokens"),
        reasoning_tokens=_token_count(
            completion_details.get("reasoning_tokens"), "reasoning_tokens"
        ),
    )


def upstream_error(provider: str, status: int, body: bytes, headers: dict[str, str],
                   secret: Secret | None) -> UpstreamError:
    """Map a provider's non-2xx reply to the UpstreamError tree (the one table)."""
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
    if status >= 500:
        return UpstreamServerError(f"provider {provider!r} failed (HTTP {status})")
    message, code, param = _client_error_fields(body, secret)
    return UpstreamClientError(
        message or f"provider {provider!r} rejected the request (HTTP {status})",
        status=status, code=code or "upstream_client_error", param=param,
    )


def _client_error_fields(body: bytes, secret: Secret | None) -> tuple[str, str | None, str | None]:
    """The provider's own explanation of a 4xx, bounded and with the provider key scrubbed."""
    try:
        error = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return "", None, None
    if not isinstance(error, dict):
        return "", None, None
    def clean(value: Any, limit: int) -> str | None:
        if not isinstance(value, str):
            return None
        value = value[:limit]
        return secret.scrub(value) if secret is not None else value

    return clean(error.get("message"), 1000) or "", clean(error.get("code"), 200), \
        clean(error.get("param"), 200)


class OpenAIAdapter:
    """Adapter for `openai` and `openai-compatible` provider entries."""

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

    async def _post(self, path: str, body: dict[str, Any]) -> Reply:
        self._check_available()
        reply = await self._transport.post(
            self._base + path, self._headers, orjson.dumps(body), self._timeouts
        )
        if reply.status >= 300:
            raise upstream_error(self.name, reply.status, reply.body, reply.headers, self._secret)
        try:
            usage = parse_openai_usage(orjson.loads(reply.body).get("usage"))
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply") from exc
        return Reply(body=reply.body, usage=usage)

    async def chat(self, body: dict[str, Any], model: str) -> Reply:
        return await self._post("/chat/completions", {**body, "model": model})

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        return await self._post("/embeddings", {**body, "model": model})

    async def chat_stream(
        self, body: dict[str, Any], model: str, include_usage: bool
    ) -> ChatStream:
        self._check_available()
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        payload = {**body, "model": model, "stream": True, "stream_options": options}
        headers = {**self._headers, "accept": "text/event-stream"}
        reply = await self._transport.open_stream(
            self._base + "/chat/completions", headers, orjson.dumps(payload), self._timeouts
        )
        if reply.status >= 300:
            try:
                raw = await reply.read()
            finally:
                reply.close()
            raise upstream_error(self.name, reply.status, raw, reply.headers, self._secret)
        stream = ChatStream(closer=reply.close)
        return stream.bind(self._frames(reply.lines(), stream, include_usage))

    async def _frames(self, lines: AsyncIterator[bytes], stream: ChatStream,
                      include_usage: bool) -> AsyncIterator[bytes]:
        """Re-frame the provider's SSE as `data:` events, reading usage on the way."""
        async for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, `event:` lines
            data = line[5:].strip()
            if data == _DONE:
                yield b"data: [DONE]\n\n"
                return
            if _USAGE_OBJECT.search(data):
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    chunk = {}
                usage = parse_openai_usage(chunk.get("usage"))
                if usage is not None:
                    stream.usage = usage
                    if not include_usage and not chunk.get("choices"):
                        continue  # the client did not ask for the usage-only chunk
            yield b"data: " + data + b"\n\n"
        raise UpstreamServerError(f"provider {self.name!r} ended the stream without [DONE]")
