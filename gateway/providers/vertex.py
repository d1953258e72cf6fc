"""Google Vertex AI: Gemini (wire shape "gemini") or Claude on Vertex (wire shape "anthropic"),
chosen by the entry's `publisher`; Google's embedding models through `:predict`.

    {root}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:ACTION

    google     :generateContent, :streamGenerateContent?alt=sse, :predict (embeddings)
    anthropic  :rawPredict, :streamRawPredict — the Messages body without `model` (it is in the
               URL) and with `anthropic_version: vertex-2023-10-16`; replies and SSE events are
               Anthropic's own, so the "anthropic" translators serve it unchanged

The root is `https://<region>-aiplatform.googleapis.com` (`https://aiplatform.googleapis.com`
for the `global` location) unless `baseURL` overrides it.

**Auth.** An OAuth access token (scope cloud-platform) from google-auth: the configured
service-account JSON key, or Application Default Credentials when none is configured
(GOOGLE_APPLICATION_CREDENTIALS, workload identity, the metadata server). google-auth is
synchronous, so tokens are minted and refreshed in a worker thread (`asyncio.to_thread`), one
refresh at a time, and cached until five minutes before they expire; requests never wait on
the network for a token they already have.

**Usage (Gemini).** `promptTokenCount` includes `cachedContentTokenCount`; tool-use prompt
tokens are extra input; output = `candidatesTokenCount` (may be absent) + `thoughtsTokenCount`
(thinking is billed as output and counted as reasoning). Stream chunks carry running totals:
each replaces the last. A Gemini stream has no end event, so once the body has ended after a
`finishReason`, the adapter adds the synthetic END event (translate/shapes/gemini.py); a body
that ends without one is a broken stream. Claude on Vertex reports Anthropic's usage, read by
the Anthropic adapter's parser.

**Errors.** Google's `{"error": {code, message, status}}` (or Anthropic's error body for Claude)
goes through the one status table; a stream chunk holding `error` ends the stream with it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import google.auth
import orjson
import requests
from google.auth.credentials import Credentials as GoogleCredentials
from google.auth.exceptions import GoogleAuthError, TransportError
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account

from tollgate.gateway.config.models import VertexProvider
from tollgate.gateway.errors import (
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamServerError,
    UpstreamUnavailable,
)
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.anthropic import ERROR_STATUS as ANTHROPIC_ERROR_STATUS
from tollgate.gateway.providers.anthropic import parse_anthropic_usage
from tollgate.gateway.providers.base import ChatStream, Reply, WireRequest
from tollgate.gateway.providers.credentials import Secret, resolve
from tollgate.gateway.providers.errors import ErrorFields, clean, upstream_error
from tollgate.gateway.providers.openai import token_count
from tollgate.gateway.translate import embeddings
from tollgate.gateway.translate.shapes.gemini import end_event
from tollgate.gateway.translate.sse import Event, SSEDecoder
from tollgate.gateway.transport import Timeouts, Transport

__all__ = ["SCOPES", "AccessToken", "VertexAdapter", "error_fields", "parse_gemini_usage"]

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_REFRESH_MARGIN_SECONDS = 300.0
_TOKEN_HTTP_TIMEOUT_SECONDS = 30.0
_EMBED_CONCURRENCY = 8


def parse_gemini_usage(meta: Any) -> Usage | None:
    """Gemini's usageMetadata → normalised Usage (see the module docstring)."""
    if not isinstance(meta, dict):
        return None
    prompt = token_count(meta.get("promptTokenCount"), "promptTokenCount")
    tool_prompt = token_count(meta.get("toolUsePromptTokenCount"), "toolUsePromptTokenCount")
    cached = token_count(meta.get("cachedContentTokenCount"), "cachedContentTokenCount")
    candidates = token_count(meta.get("candidatesTokenCount"), "candidatesTokenCount")
    thoughts = token_count(meta.get("thoughtsTokenCount"), "thoughtsTokenCount")
    return Usage(input_tokens=prompt + tool_prompt, output_tokens=candidates + thoughts,
                 cached_input_tokens=min(cached, prompt), reasoning_tokens=thoughts)


def error_fields(body: bytes, secret: Secret | None) -> ErrorFields:
    """Google's `{"error": {message, status}}` or Anthropic's `{"error": {type, message}}`."""
    try:
        error = orjson.loads(body)
        if isinstance(error, list) and error:  # streamGenerateContent without alt=sse
            error = error[0]
        error = error.get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return ErrorFields()
    if not isinstance(error, dict):
        return ErrorFields()
    code = error.get("status") or error.get("type")
    return ErrorFields(clean(error.get("message"), 1000, secret) or "",
                       clean(code, 200, secret))


class AccessToken:
    """An OAuth access token kept fresh by google-auth in a worker thread."""

    def __init__(self, service_account_info: dict[str, Any] | None) -> None:
        self._info = service_account_info
        self._credentials: GoogleCredentials | None = None
        self._session: requests.Session | None = None
        self._token: str | None = None
        self._fresh_until = 0.0  # monotonic time after which the token is refreshed first
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "AccessToken('**********')"

    async def get(self) -> str:
        token = self._token
        if token is not None and time.monotonic() < self._fresh_until:
            return token
        async with self._lock:
            if self._token is None or time.monotonic() >= self._fresh_until:
                await asyncio.to_thread(self._refresh)
            assert self._token is not None
            return self._token

    def _refresh(self) -> None:
        """Runs in a worker thread: google-auth's blocking HTTP happens here."""
        try:
            if self._credentials is None:
                if self._info is not None:
                    self._credentials = service_account.Credentials.from_service_account_info(
                        self._info, scopes=SCOPES)
                else:
                    self._credentials, _ = google.auth.default(scopes=SCOPES)
            if self._session is None:
                self._session = requests.Session()
            request = GoogleRequest(self._session)
            self._credentials.refresh(request)
        except TransportError as exc:
            raise UpstreamConnectError("could not reach Google's token endpoint") from exc
        except (GoogleAuthError, ValueError, KeyError) as exc:
            raise UpstreamUnavailable(
                f"Google credentials could not mint an access token ({type(exc).__name__})"
            ) from exc
        token = self._credentials.token
        if not isinstance(token, str) or not token:
            raise UpstreamUnavailable("Google's token endpoint returned no access token")
        expiry = self._credentials.expiry  # naive UTC, or None for tokens that never expire
        lifetime = 3600.0
        if expiry is not None:
            lifetime = (expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
        self._token = token
        self._fresh_until = time.monotonic() + max(0.0, lifetime - _REFRESH_MARGIN_SECONDS)


def _service_account(secret: Secret | None) -> dict[str, Any] | None:
    if secret is None:
        return None
    try:
        info = json.loads(secret.reveal())
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


class VertexAdapter:
    """Adapter for `vertex` provider entries (one publisher each)."""

    def __init__(self, config: VertexProvider, transport: Transport,
                 catalog_models: tuple[str, ...]) -> None:
        self.name = config.name
        self.type = config.type
        self._transport = transport
        self._publisher = config.publisher
        self.wire = "anthropic" if config.publisher == "anthropic" else "gemini"
        root = config.base_url or (
            "https://aiplatform.googleapis.com" if config.region == "global"
            else f"https://{config.region}-aiplatform.googleapis.com")
        self._prefix = (f"{root.rstrip('/')}/v1/projects/{config.project}/locations/"
                        f"{config.region}/publishers/")
        claude = config.publisher == "anthropic"
        self._models = config.models or tuple(
            m for m in catalog_models if m.startswith("claude") == claude)
        t = config.timeouts
        self._timeouts = Timeouts(t.connect_seconds, t.first_byte_seconds, t.total_seconds)
        self._anthropic_version = config.anthropic_version
        self._secret: Secret | None = None
        info: dict[str, Any] | None = None
        self.available = True
        if config.service_account is not None:
            self._secret = resolve(config.service_account)
            info = _service_account(self._secret)
            self.available = info is not None
        self._token = AccessToken(info)

    def served_models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def _url(self, model: str, action: str, publisher: str | None = None) -> str:
        return f"{self._prefix}{publisher or self._publisher}/models/{model}:{action}"

    async def _headers(self, request: WireRequest | None, accept: str) -> dict[str, str]:
        if not self.available:
            raise UpstreamUnavailable(
                f"provider {self.name!r} has no usable service-account key (see its "
                "`serviceAccount` reference)")
        headers = {"content-type": "application/json", "accept": accept,
                   "authorization": f"Bearer {await self._token.get()}"}
        if request is not None and request.headers:
            headers.update(request.headers)
        return headers

    def _error(self, status: int, headers: dict[str, str], body: bytes) -> Exception:
        return upstream_error(self.name, status, headers, error_fields(body, self._secret))

    def _payload(self, request: WireRequest, stream: bool) -> dict[str, Any]:
        if self.wire == "gemini":
            return request.body
        payload = {k: v for k, v in request.body.items() if k not in ("model", "stream")}
        payload["anthropic_version"] = self._anthropic_version
        if stream:
            payload["stream"] = True
        return payload

    async def _post(self, url: str, request: WireRequest | None,
                    payload: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        headers = await self._headers(request, "application/json")
        reply = await self._transport.post(url, headers, orjson.dumps(payload), self._timeouts)
        if reply.status >= 300:
            raise self._error(reply.status, reply.headers, reply.body)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply") from exc
        if not isinstance(data, dict):
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply")
        return reply.body, data

    async def chat(self, request: WireRequest, model: str) -> Reply:
        gemini = self.wire == "gemini"
        action = "generateContent" if gemini else "rawPredict"
        body, data = await self._post(self._url(model, action), request,
                                      self._payload(request, stream=False))
        usage = parse_gemini_usage(data.get("usageMetadata")) if gemini \
            else parse_anthropic_usage(data.get("usage"))
        return Reply(body=body, usage=usage, data=data)

    async def chat_stream(self, request: WireRequest, model: str) -> ChatStream:
        gemini = self.wire == "gemini"
        url = self._url(model, "streamGenerateContent?alt=sse" if gemini else "streamRawPredict")
        headers = await self._headers(request, "text/event-stream")
        reply = await self._transport.open_stream(
            url, headers, orjson.dumps(self._payload(request, stream=True)), self._timeouts)
        if reply.status >= 300:
            try:
                raw = await reply.read()
            finally:
                reply.close()
            raise self._error(reply.status, reply.headers, raw)
        stream = ChatStream(closer=reply.close)
        events = self._gemini_events if gemini else self._anthropic_events
        return stream.bind(events(reply.lines(), stream))

    async def _gemini_events(self, lines: AsyncIterator[bytes],
                             stream: ChatStream) -> AsyncIterator[Event]:
        decoder = SSEDecoder()
        finished = False
        async for line in lines:
            event = decoder.feed_line(line)
            if event is None:
                continue
            try:
                chunk = event.json()
            except ValueError as exc:
                raise UpstreamServerError(
                    f"provider {self.name!r} sent a malformed stream chunk") from exc
            if not isinstance(chunk, dict):
                raise UpstreamServerError(f"provider {self.name!r} sent a malformed stream chunk")
            error = chunk.get("error")
            if isinstance(error, dict):
                status = error.get("code") if isinstance(error.get("code"), int) else 500
                raise self._error(status, {}, event.data)
            if "usageMetadata" in chunk:
                stream.usage = parse_gemini_usage(chunk["usageMetadata"])
            candidates = chunk.get("candidates")
            if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) \
                    and candidates[0].get("finishReason"):
                finished = True
            yield event
        if not finished:
            raise UpstreamServerError(f"provider {self.name!r} ended the stream before a "
                                      "finishReason")
        yield end_event()

    async def _anthropic_events(self, lines: AsyncIterator[bytes],
                                stream: ChatStream) -> AsyncIterator[Event]:
        """Claude on Vertex: Anthropic's named SSE events (see providers/anthropic.py)."""
        decoder = SSEDecoder()
        figures: dict[str, Any] = {}
        async for line in lines:
            event = decoder.feed_line(line)
            if event is None:
                continue
            name = event.name
            if name in ("message_start", "message_delta"):
                try:
                    body = event.json()
                    usage = body["message"]["usage"] if name == "message_start" \
                        else body.get("usage")
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise UpstreamServerError(
                        f"provider {self.name!r} sent a malformed {name} event") from exc
                if isinstance(usage, dict):
                    figures = {**figures, **{k: v for k, v in usage.items() if v is not None}}
                    stream.usage = parse_anthropic_usage(figures)
            elif name == "error":
                try:
                    kind = (event.json().get("error") or {}).get("type")
                except (ValueError, AttributeError):
                    kind = None
                status = ANTHROPIC_ERROR_STATUS.get(kind, 500) if isinstance(kind, str) else 500
                raise self._error(status, {}, event.data)
            yield event
            if name == "message_stop":
                return
        raise UpstreamServerError(f"provider {self.name!r} ended the stream without "
                                  "message_stop")

    # --- embeddings ------------------------------------------------------------------------

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        if self.wire != "gemini":
            raise UpstreamClientError(
                f"provider {self.name!r} (Claude on Vertex) does not serve embeddings",
                status=400, code="unsupported_for_provider")
        texts = embeddings.inputs(body)
        step = embeddings.vertex_batch_size(model)
        batches = [texts[i:i + step] for i in range(0, len(texts), step)]
        url = self._url(model, "predict", "google")
        results: list[tuple[list[list[float]], int]] = []
        for start in range(0, len(batches), _EMBED_CONCURRENCY):
            replies = await asyncio.gather(*(
                self._post(url, None, embeddings.vertex_request(batch, body))
                for batch in batches[start:start + _EMBED_CONCURRENCY]))
            results += [embeddings.vertex_vectors(data) for _, data in replies]
        vectors = [v for batch_vectors, _ in results for v in batch_vectors]
        if len(vectors) != len(texts):
            raise UpstreamServerError(f"provider {self.name!r} returned {len(vectors)} "
                                      f"embeddings for {len(texts)} texts")
        tokens = sum(count for _, count in results)
        data = embeddings.openai_list(vectors, model, tokens, body)
        return Reply(body=orjson.dumps(data), usage=Usage(input_tokens=tokens), data=data)
