"""Azure OpenAI: wire shape "openai", addressed by deployment.

    POST {baseURL}/openai/deployments/{deployment}/chat/completions?api-version={apiVersion}
    POST {baseURL}/openai/deployments/{deployment}/embeddings?api-version={apiVersion}

Callers and prices use base model names (`gpt-4o`); `deployments` maps each to the Azure
deployment serving it (a model with no mapping is sent as a deployment of the same name). The
key goes in the `api-key` header, or an Entra ID access token in `Authorization: Bearer` (read
from its file or variable at each config load, like every credential). Bodies are OpenAI's:
forwarded with `model` set to the base model, streams forced to report usage
(`stream_options.include_usage`), replies and usage read exactly as the OpenAI adapter does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from tollgate.gateway.config.models import AzureOpenAIProvider
from tollgate.gateway.errors import UpstreamServerError, UpstreamUnavailable
from tollgate.gateway.providers.base import ChatStream, Reply, WireRequest
from tollgate.gateway.providers.credentials import Secret, resolve
from tollgate.gateway.providers.errors import upstream_error
from tollgate.gateway.providers.openai import error_fields, parse_openai_usage
from tollgate.gateway.translate.shapes.openai import DONE
from tollgate.gateway.translate.sse import Event
from tollgate.gateway.transport import Timeouts, Transport

__all__ = ["AzureOpenAIAdapter"]

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


class AzureOpenAIAdapter:
    """Adapter for `azure-openai` provider entries."""

    wire = "openai"

    def __init__(self, config: AzureOpenAIProvider, transport: Transport,
                 catalog_models: tuple[str, ...]) -> None:
        self.name = config.name
        self.type = config.type
        self._transport = transport
        self._base = config.base_url.rstrip("/")
        self._query = f"?api-version={quote(config.api_version, safe='')}"
        self._deployments = {d.model: d.deployment for d in config.deployments}
        self._models = config.models or tuple(self._deployments)
        t = config.timeouts
        self._timeouts = Timeouts(t.connect_seconds, t.first_byte_seconds, t.total_seconds)
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        ref = config.api_key or config.entra_token
        self._secret: Secret | None = resolve(ref) if ref is not None else None
        self.available = ref is None or self._secret is not None
        if self._secret is not None and config.api_key is not None:
            self._headers["api-key"] = self._secret.reveal()
        elif self._secret is not None:
            self._headers["authorization"] = f"Bearer {self._secret.reveal()}"

    def served_models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def _url(self, model: str, operation: str) -> str:
        deployment = self._deployments.get(model, model)
        return (f"{self._base}/openai/deployments/{quote(deployment, safe='')}/{operation}"
                f"{self._query}")

    def _check_available(self) -> None:
        if not self.available:
            raise UpstreamUnavailable(f"provider {self.name!r} has no API key or Entra ID "
                                      "token (see its `apiKey` / `entraToken` reference)")

    async def _post(self, url: str, body: dict[str, Any]) -> Reply:
        self._check_available()
        reply = await self._transport.post(url, self._headers, orjson.dumps(body),
                                           self._timeouts)
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
        options = dict(request.body.get("stream_options") or {})
        options["include_usage"] = True
        payload = {**request.body, "model": model, "stream": True, "stream_options": options}
        reply = await self._transport.open_stream(
            self._url(model, "chat/completions"), {**self._headers, "accept": "text/event-stream"},
            orjson.dumps(payload), self._timeouts)
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
        async for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
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
                        continue
            if isinstance(event_json := _maybe_json(event), dict) and \
                    not event_json.get("choices") and "usage" not in event_json:
                continue  # Azure's content-filter preamble (`prompt_filter_results`, no choices)
            yield event
        raise UpstreamServerError(f"provider {self.name!r} ended the stream without [DONE]")


def _maybe_json(event: Event) -> Any:
    if b'"prompt_filter_results"' not in event.data:
        return None
    try:
        return event.json()
    except orjson.JSONDecodeError:
        return None
