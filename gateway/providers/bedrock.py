"""Amazon Bedrock: wire shape "bedrock-converse" (Converse / ConverseStream), embeddings through
InvokeModel (Titan Text Embeddings, Cohere Embed).

    POST {endpoint}/model/{modelId}/converse          JSON in, JSON out
    POST {endpoint}/model/{modelId}/converse-stream   JSON in, AWS event-stream out
    POST {endpoint}/model/{modelId}/invoke            the model's own JSON (embeddings)

The endpoint is `https://bedrock-runtime.<region>.amazonaws.com` unless `baseURL` overrides it.
Every request is signed with SigV4 by botocore (`SigV4Auth` over an `AWSRequest`, service
`bedrock`); the model id goes into the path percent-encoded, in the form aiohttp puts on the
wire (yarl normalises `%3A` back to `:` but keeps `%2F` in ARNs), and that exact form is what
gets signed — the signature covers the bytes the server receives. Credentials are the
configured key pair (+ session token), or botocore's default chain (environment, IRSA web
identity, container and instance roles) resolved in a worker thread on first use and refreshed
there when botocore says they are about to expire.

ConverseStream frames are decoded by translate/eventstream.py (botocore's parser); an `event`
frame becomes an `Event` named by its `:event-type`, an `exception` frame is raised through the
one error table. A stream is complete after its `metadata` event (usage); a body that ends
before it is a broken stream.

Usage, per USAGE-SEMANTICS: `inputTokens` excludes cache reads and writes, so input =
inputTokens + cacheReadInputTokens + cacheWriteInputTokens; the one-hour part of the writes
comes from `cacheDetails`; the duplicate `*InputTokenCount` fields are never read.

Errors: the `x-amzn-errortype` header (or the body's `__type`) names the AWS exception:
ThrottlingException and ServiceQuotaExceeded → 429 (rate limited), ServiceUnavailable and
ModelNotReady → 503, InternalServer / ModelStreamError → 500 (all retryable), ModelTimeout →
408, AccessDenied / UnrecognizedClient / InvalidSignature / ExpiredToken → 403 (the gateway's
credentials), ValidationException → 400 and ResourceNotFound → 404 (the caller's problem).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson
import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError
from botocore.session import Session

from tollgate.gateway.config.models import BedrockProvider
from tollgate.gateway.errors import UpstreamClientError, UpstreamServerError, UpstreamUnavailable
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.base import ChatStream, Reply, WireRequest
from tollgate.gateway.providers.credentials import Secret, resolve
from tollgate.gateway.providers.errors import ErrorFields, clean, upstream_error
from tollgate.gateway.providers.openai import token_count
from tollgate.gateway.translate import embeddings
from tollgate.gateway.translate.eventstream import EventStreamDecoder, EventStreamError
from tollgate.gateway.translate.sse import Event
from tollgate.gateway.transport import Timeouts, Transport, TransportReply

__all__ = ["ERROR_STATUS", "BedrockAdapter", "SigV4Signer", "error_fields", "error_status",
           "parse_bedrock_usage"]

SERVICE = "bedrock"  # the signing name of the bedrock-runtime endpoint

ERROR_STATUS = {
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "serviceunavailableexception": 503,
    "modelnotreadyexception": 503,
    "internalserverexception": 500,
    "modelstreamerrorexception": 500,
    "modelerrorexception": 500,
    "modeltimeoutexception": 408,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 403,
    "invalidsignatureexception": 403,
    "expiredtokenexception": 403,
    "validationexception": 400,
    "resourcenotfoundexception": 404,
    "conflictexception": 409,
}
"""An AWS exception name (lower-cased: streams spell them camelCase) → the status it stands for."""

_EMBED_CONCURRENCY = 8
_NO_CREDENTIALS_RETRY_SECONDS = 60.0


def parse_bedrock_usage(usage: Any) -> Usage | None:
    """Converse's usage object → normalised Usage (see the module docstring)."""
    if not isinstance(usage, dict):
        return None
    plain = token_count(usage.get("inputTokens"), "inputTokens")
    reads = token_count(usage.get("cacheReadInputTokens"), "cacheReadInputTokens")
    writes = token_count(usage.get("cacheWriteInputTokens"), "cacheWriteInputTokens")
    output = token_count(usage.get("outputTokens"), "outputTokens")
    writes_1h = 0
    details = usage.get("cacheDetails")
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and detail.get("ttl") == "1h":
                writes_1h += token_count(detail.get("inputTokens"), "cacheDetails.inputTokens")
    return Usage(input_tokens=plain + reads + writes, output_tokens=output,
                 cached_input_tokens=reads, cache_write_tokens=writes,
                 cache_write_1h_tokens=min(writes_1h, writes))


def _error_name(headers: dict[str, str], data: Any) -> str | None:
    name = headers.get("x-amzn-errortype")
    if not name and isinstance(data, dict):
        name = data.get("__type") or data.get("code")
    if not isinstance(name, str) or not name:
        return None
    return name.split(":", 1)[0].rsplit("#", 1)[-1]


def error_status(name: str | None, status: int) -> int:
    """The status an AWS exception stands for (the HTTP status when it is not one we know)."""
    return ERROR_STATUS.get(name.lower(), status) if name else status


def error_fields(body: bytes, headers: dict[str, str],
                 secret: Secret | None) -> tuple[str | None, ErrorFields]:
    """(exception name, explanation) of a refused request: `{"message": …}` plus the name."""
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        data = {}
    name = _error_name(headers, data)
    message = data.get("message") or data.get("Message") if isinstance(data, dict) else None
    return name, ErrorFields(clean(message, 1000, secret) or "", clean(name, 200, secret))


class SigV4Signer:
    """Signs one request at a time with botocore; its repr never shows a credential."""

    def __init__(self, region: str, credentials: Credentials | None) -> None:
        self._region = region
        self._static = credentials
        self._chain: Credentials | None = None
        self._chain_failed_at: float | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SigV4Signer(region={self._region!r})"

    async def credentials(self) -> ReadOnlyCredentials:
        if self._static is not None:
            return self._static.get_frozen_credentials()
        chain = self._chain
        if chain is None:
            async with self._lock:
                chain = self._chain or await self._resolve()
        if isinstance(chain, RefreshableCredentials) and chain.refresh_needed():
            return await asyncio.to_thread(chain.get_frozen_credentials)
        return chain.get_frozen_credentials()

    async def _resolve(self) -> Credentials:
        failed = self._chain_failed_at
        if failed is not None and time.monotonic() - failed < _NO_CREDENTIALS_RETRY_SECONDS:
            raise UpstreamUnavailable("no AWS credentials were found in the default chain")
        try:
            found = await asyncio.to_thread(lambda: Session().get_credentials())
        except BotoCoreError as exc:
            found = None
            cause: Exception | None = exc
        else:
            cause = None
        if found is None:
            self._chain_failed_at = time.monotonic()
            raise UpstreamUnavailable(
                "no AWS credentials were found in the default chain") from cause
        self._chain = found
        return found

    def sign(self, credentials: ReadOnlyCredentials, url: str, body: bytes,
             headers: dict[str, str]) -> dict[str, str]:
        """The headers to send: `headers` plus X-Amz-Date, the token and Authorization."""
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(credentials, SERVICE, self._region).add_auth(request)
        return dict(request.headers.items())


def _wire_url(base: str, model: str, action: str) -> str:
    """The URL exactly as aiohttp will send it (see the module docstring)."""
    return str(yarl.URL(f"{base}/model/{quote(model, safe='')}/{action}"))


class BedrockAdapter:
    """Adapter for `bedrock` provider entries."""

    wire = "bedrock-converse"

    def __init__(self, config: BedrockProvider, transport: Transport,
                 catalog_models: tuple[str, ...]) -> None:
        self.name = config.name
        self.type = config.type
        self._transport = transport
        self._base = (config.base_url or
                      f"https://bedrock-runtime.{config.region}.amazonaws.com").rstrip("/")
        self._models = config.models or catalog_models
        t = config.timeouts
        self._timeouts = Timeouts(t.connect_seconds, t.first_byte_seconds, t.total_seconds)
        credentials: Credentials | None = None
        self._secret: Secret | None = None
        self.available = True
        if config.access_key_id is not None and config.secret_access_key is not None:
            key = resolve(config.access_key_id)
            secret = resolve(config.secret_access_key)
            token = resolve(config.session_token) if config.session_token is not None else None
            missing_token = config.session_token is not None and token is None
            if key is None or secret is None or missing_token:
                self.available = False
            else:
                self._secret = secret
                credentials = Credentials(key.reveal(), secret.reveal(),
                                          token.reveal() if token is not None else None)
        self._signer = SigV4Signer(config.region, credentials)

    def served_models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def _check_available(self) -> None:
        if not self.available:
            raise UpstreamUnavailable(
                f"provider {self.name!r} has no AWS credentials: a configured "
                "`accessKeyId`/`secretAccessKey`/`sessionToken` reference is empty or missing")

    async def _signed(self, url: str, body: bytes, accept: str) -> dict[str, str]:
        self._check_available()
        credentials = await self._signer.credentials()
        return self._signer.sign(credentials, url, body,
                                 {"content-type": "application/json", "accept": accept})

    def _error(self, reply_status: int, headers: dict[str, str], body: bytes) -> Exception:
        name, fields = error_fields(body, headers, self._secret)
        status = error_status(name, reply_status)
        return upstream_error(self.name, status, headers, fields)

    async def _post(self, model: str, action: str, payload: dict[str, Any]
                    ) -> tuple[TransportReply, Any]:
        url = _wire_url(self._base, model, action)
        body = orjson.dumps(payload)
        reply = await self._transport.post(url, await self._signed(url, body, "application/json"),
                                           body, self._timeouts)
        if reply.status >= 300:
            raise self._error(reply.status, reply.headers, reply.body)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply") from exc
        if not isinstance(data, dict):
            raise UpstreamServerError(f"provider {self.name!r} sent a malformed reply")
        return reply, data

    async def chat(self, request: WireRequest, model: str) -> Reply:
        reply, data = await self._post(model, "converse", request.body)
        return Reply(body=reply.body, usage=parse_bedrock_usage(data.get("usage")), data=data)

    async def chat_stream(self, request: WireRequest, model: str) -> ChatStream:
        url = _wire_url(self._base, model, "converse-stream")
        body = orjson.dumps(request.body)
        headers = await self._signed(url, body, "application/vnd.amazon.eventstream")
        reply = await self._transport.open_stream(url, headers, body, self._timeouts)
        if reply.status >= 300:
            try:
                raw = await reply.read()
            finally:
                reply.close()
            raise self._error(reply.status, reply.headers, raw)
        stream = ChatStream(closer=reply.close)
        return stream.bind(self._events(reply.chunks(), stream))

    async def _events(self, chunks: AsyncIterator[bytes],
                      stream: ChatStream) -> AsyncIterator[Event]:
        decoder = EventStreamDecoder()
        async for chunk in chunks:
            try:
                frames = decoder.feed(chunk)
            except EventStreamError as exc:
                raise UpstreamServerError(
                    f"provider {self.name!r} sent a broken event stream") from exc
            for frame in frames:
                if frame.message_type != "event":
                    raise self._error(500, {"x-amzn-errortype": frame.event_type or ""},
                                      frame.payload)
                event = Event(frame.payload, frame.event_type)
                if event.name == "metadata":
                    try:
                        usage = event.json().get("usage")
                    except (ValueError, AttributeError) as exc:
                        raise UpstreamServerError(
                            f"provider {self.name!r} sent a malformed metadata event") from exc
                    stream.usage = parse_bedrock_usage(usage)
                    yield event
                    return
                yield event
        raise UpstreamServerError(f"provider {self.name!r} ended the stream before its "
                                  "metadata event")

    # --- embeddings ------------------------------------------------------------------------

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        kind = embeddings.family(model)
        if kind is None:
            raise UpstreamClientError(
                f"provider {self.name!r} serves embeddings for Titan and Cohere models only, "
                f"not {model!r}", status=400, code="unsupported_for_provider")
        texts = embeddings.inputs(body)
        if kind == "titan":
            vectors, tokens = await self._titan(texts, body, model)
        else:
            vectors, tokens = await self._cohere(texts, body, model)
        data = embeddings.openai_list(vectors, model, tokens, body)
        return Reply(body=orjson.dumps(data), usage=Usage(input_tokens=tokens), data=data)

    def _header_tokens(self, reply: TransportReply) -> int:
        value = reply.headers.get("x-amzn-bedrock-input-token-count", "")
        return int(value) if value.isdigit() else 0

    async def _bounded(self, calls: list[Callable[[], Any]]) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(calls), _EMBED_CONCURRENCY):
            batch = calls[start:start + _EMBED_CONCURRENCY]
            results += await asyncio.gather(*(call() for call in batch))
        return results

    async def _titan(self, texts: list[str], body: dict[str, Any],
                     model: str) -> tuple[list[list[float]], int]:
        async def one(text: str) -> tuple[list[float], int]:
            reply, data = await self._post(model, "invoke", embeddings.titan_request(text, body))
            vector, count = embeddings.titan_vector(data)
            return vector, count if count is not None else self._header_tokens(reply)

        results = await self._bounded([lambda t=text: one(t) for text in texts])
        return [vector for vector, _ in results], sum(count for _, count in results)

    async def _cohere(self, texts: list[str], body: dict[str, Any],
                      model: str) -> tuple[list[list[float]], int]:
        async def one(batch: list[str]) -> tuple[list[list[float]], int]:
            reply, data = await self._post(model, "invoke",
                                           embeddings.cohere_request(batch, body, model))
            vectors = embeddings.cohere_vectors(data)
            if len(vectors) != len(batch):
                raise UpstreamServerError(f"provider {self.name!r} returned "
                                          f"{len(vectors)} embeddings for {len(batch)} texts")
            return vectors, self._header_tokens(reply)

        step = embeddings.COHERE_BATCH
        batches = [texts[i:i + step] for i in range(0, len(texts), step)]
        results = await self._bounded([lambda b=batch: one(b) for batch in batches])
        return [v for vectors, _ in results for v in vectors], sum(c for _, c in results)
