"""A fake Amazon Bedrock runtime on 127.0.0.1: Converse, ConverseStream (real AWS event-stream
binary frames) and InvokeModel for Titan / Cohere embeddings, with fault injection.

    POST /model/{modelId}/converse          Converse JSON
    POST /model/{modelId}/converse-stream   application/vnd.amazon.eventstream frames:
                                            messageStart, [contentBlockStart] contentBlockDelta…
                                            contentBlockStop per block, messageStop, metadata
    POST /model/{modelId}/invoke            Titan Text Embeddings v2 / Cohere Embed v3, v4

**Verification.** Every request must carry a valid SigV4 signature for the test credentials
(`AccessKey`), checked with botocore's own signer: the canonical request is rebuilt from the
raw path as received, the signed headers and the body, and the signature recomputed and
compared — as AWS does. A missing or wrong signature, a wrong key, region or service, a
missing session token or a stale X-Amz-Date answers 403 (`InvalidSignatureException`,
`UnrecognizedClientException`). Converse bodies are checked against the API's rules (known
top-level fields, alternating roles starting with user, one known member per content block, no
blank text, toolResult answering the previous turn's toolUse, toolConfig present when the
conversation holds tool blocks, inferenceConfig fields) and refused with 400
`ValidationException` otherwise, so a 200 means the shape was right.

**Frames.** botocore decodes event streams but has no encoder, so `encode_frame` below is a
minimal one, used only by this fake: prelude (total length, headers length, CRC32), string
headers (`:event-type`, `:content-type`, `:message-type`), payload, message CRC32. Every
payload carries a `p` padding field, as Bedrock's do.

**Replies** are deterministic: "Echo: <last user text>" ("Echo: <tool result text>" after tool
results); `reply_with_tool_use` makes requests offering tools get a text block and a toolUse
(stop reason tool_use). Usage defaults to word counts; `set_usage` sets exact figures with
cache reads/writes, reported the way Bedrock does — `inputTokens` excluding the cache classes,
`cacheDetails` by TTL, and the duplicate `*InputTokenCount` fields, which must never be added.

Faults: a FIFO `script(...)` of `Fault`s, each taken by the next request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import struct
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.loopback import LoopbackServer, Recorder, RejectionLog, hang_up, serving

__all__ = [
    "AccessKey",
    "FakeBedrock",
    "Fault",
    "RecordedRequest",
    "encode_frame",
    "running_fake_bedrock",
]

_TOP_LEVEL = frozenset({"messages", "system", "inferenceConfig", "toolConfig",
                        "additionalModelRequestFields", "guardrailConfig", "promptVariables",
                        "requestMetadata", "performanceConfig",
                        "additionalModelResponseFieldPaths"})
_BLOCK_KEYS = frozenset({"text", "image", "document", "toolUse", "toolResult",
                         "reasoningContent", "cachePoint", "video", "guardContent",
                         "citationsContent"})
_INFERENCE = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"


@dataclass(frozen=True)
class AccessKey:
    """The credentials the fake accepts (and the gateway signs with)."""

    access_key_id: str = "AKIAFAKEFAKEFAKE0001"
    secret_access_key: str = "fake/secret/key/for+tests/only/0000000000"
    session_token: str | None = None
    region: str = "us-east-1"


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    error_type: str = "ThrottlingException"
    message: str = "Too many requests, please wait before trying again."
    exception_after: int | None = None  # stream: events before an exception frame
    exception_type: str = "throttlingException"
    break_after: int | None = None
    drop: bool = False
    delay: float = 0.0
    omit_metadata: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    path: str  # as received, percent-encoding included
    model: str
    action: str
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    script: deque[Fault] = field(default_factory=deque)
    usage: dict[str, int] = field(default_factory=dict)
    tool_use: tuple[str, dict[str, Any]] | None = None
    reasoning: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)


class _Invalid(Exception):
    pass


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers (type 7) — the fake's own encoder."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name + b"\x07"
        encoded += struct.pack("!H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def _event_frame(name: str, payload: dict[str, Any]) -> bytes:
    body = {**payload, "p": _PADDING[: 5 + len(name) % 20]}
    return encode_frame({":event-type": name, ":content-type": "application/json",
                         ":message-type": "event"}, json.dumps(body).encode())


def _exception_frame(kind: str, message: str) -> bytes:
    return encode_frame({":exception-type": kind, ":content-type": "application/json",
                         ":message-type": "exception"}, json.dumps({"message": message}).encode())


def _texts(content: Any) -> list[str]:
    out = []
    for block in content if isinstance(content, list) else ():
        if "text" in block:
            out.append(block["text"])
        elif "toolResult" in block:
            out += _texts(block["toolResult"].get("content"))
    return out


def _words(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)


class FakeBedrock(Recorder, RejectionLog, LoopbackServer):
    name = "fake-bedrock"
    state_type = _State
    fault_type = Fault

    def __init__(self, key: AccessKey | None = None) -> None:
        super().__init__()
        self.key = key or AccessKey()

    # --- what tests use ---------------------------------------------------------------------

    def set_usage(self, *, input_tokens: int, output_tokens: int, cache_read: int = 0,
                  cache_write: int = 0, cache_write_1h: int = 0) -> None:
        with self._lock:
            self._state.usage = {"input": input_tokens, "output": output_tokens,
                                 "read": cache_read, "write": cache_write,
                                 "write_1h": cache_write_1h}

    def reply_with_tool_use(self, name: str, arguments: dict[str, Any]) -> None:
        with self._lock:
            self._state.tool_use = (name, arguments)

    def reply_with_reasoning(self) -> None:
        with self._lock:
            self._state.reasoning = True

    # --- server -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._handle)

    def _verify_signature(self, request: web.Request, raw: bytes) -> str | None:
        """None when the SigV4 signature is valid, else why not."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        authorization = headers.get("authorization", "")
        scheme, _, rest = authorization.partition(" ")
        if scheme != "AWS4-HMAC-SHA256":
            return "missing or non-SigV4 Authorization header"
        fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        credential = fields.get("Credential", "").split("/")
        if len(credential) != 5:
            return "malformed credential scope"
        key_id, day, region, service, terminal = credential
        if key_id != self.key.access_key_id:
            return "UnrecognizedClientException: unknown access key"
        if (region, service, terminal) != (self.key.region, "bedrock", "aws4_request"):
            return f"wrong credential scope {region}/{service}/{terminal}"
        stamp = headers.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "missing X-Amz-Date"
        if abs((datetime.now(UTC) - signed_at).total_seconds()) > 300 or stamp[:8] != day:
            return "X-Amz-Date is stale or disagrees with the scope"
        if self.key.session_token is not None and \
                headers.get("x-amz-security-token") != self.key.session_token:
            return "missing or wrong X-Amz-Security-Token"
        names = fields.get("SignedHeaders", "").split(";")
        if "host" not in names or "x-amz-date" not in names:
            return "host and x-amz-date must be signed"
        if any(name not in headers for name in names):
            return "a signed header is missing from the request"
        rebuilt = AWSRequest(method=request.method, url=f"http://{headers['host']}"
                             f"{request.raw_path}", data=raw,
                             headers={name: headers[name] for name in names})
        rebuilt.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(self.key.access_key_id, self.key.secret_access_key,
                                       self.key.session_token), "bedrock", self.key.region)
        canonical = signer.canonical_request(rebuilt)
        expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return "InvalidSignatureException: the request signature does not match"
        return None

    @staticmethod
    def _error(status: int, kind: str, message: str) -> web.Response:
        return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                            content_type="application/json",
                            headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/"
                                                         "coral/com.amazon.bedrock/"})

    def _reject(self, problem: str) -> web.Response:
        with self._lock:
            self._state.rejections.append(problem)
        return self._error(400, "ValidationException", problem)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        path = request.raw_path.split("?", 1)[0]
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "model":
            return self._error(404, "UnknownOperationException", f"no operation at {path}")
        model, action = unquote(parts[2]), parts[3]
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            state = self._state
            state.requests.append(RecordedRequest(path, model, action, headers, body))
            fault = state.script.popleft() if state.script else None
        problem = self._verify_signature(request, raw)
        if problem is not None:
            with self._lock:
                state.rejections.append(problem)
            kind = problem.split(":", 1)[0] if problem.endswith("match") or \
                problem.startswith("Unrecognized") else "InvalidSignatureException"
            return self._error(403, kind, problem)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.drop:
            await hang_up(request)
        if fault is not None and fault.status is not None:
            return self._error(fault.status, fault.error_type, fault.message)
        if action == "invoke":
            return self._invoke(model, body)
        if action not in ("converse", "converse-stream"):
            return self._error(404, "UnknownOperationException", f"unknown action {action}")
        expected_accept = "application/vnd.amazon.eventstream" if action == "converse-stream" \
            else "application/json"
        if headers.get("content-type") != "application/json" or \
                headers.get("accept") != expected_accept:
            return self._reject(f"content-type/accept must be application/json / "
                                f"{expected_accept}")
        try:
            self._check(body)
        except _Invalid as exc:
            return self._reject(str(exc))
        blocks, stop = self._answer(body, state)
        usage = self._usage(body, blocks, state)
        if action == "converse":
            return web.json_response({
                "output": {"message": {"role": "assistant", "content": blocks}},
                "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 12}})
        return await self._stream(request, fault or Fault(), blocks, stop, usage)

    # --- Converse rules ---------------------------------------------------------------------

    def _check(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _Invalid("the body must be a JSON object")
        extra = sorted(set(body) - _TOP_LEVEL)
        if extra:
            raise _Invalid(f"extraneous key [{extra[0]}] is not permitted")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid("messages: at least one message is required")
        if messages[0].get("role") != "user":
            raise _Invalid("A conversation must start with a user message.")
        previous, tool_ids, uses_tools = None, set(), False
        for i, message in enumerate(messages):
            role = message.get("role")
            if role not in ("user", "assistant") or role == previous:
                raise _Invalid(f"messages.{i}: roles must alternate between user and "
                               "assistant")
            previous = role
            content = message.get("content")
            if not isinstance(content, list) or not content:
                raise _Invalid(f"messages.{i}.content: at least one content block")
            declared, answered = set(), set()
            for j, block in enumerate(content):
                keys = set(block) if isinstance(block, dict) else set()
                if len(keys) != 1 or not keys <= _BLOCK_KEYS:
                    raise _Invalid(f"messages.{i}.content.{j}: exactly one known member")
                (kind,) = keys
                if kind == "text" and not str(block["text"]).strip():
                    raise _Invalid(f"messages.{i}.content.{j}: The text field in the "
                                   "ContentBlock object is blank.")
                if kind == "image":
                    image = block["image"]
                    if image.get("format") not in _IMAGE_FORMATS:
                        raise _Invalid(f"messages.{i}.content.{j}.image.format")
                    try:
                        base64.b64decode(image["source"]["bytes"], validate=True)
                    except (KeyError, TypeError, ValueError) as exc:
                        raise _Invalid(f"messages.{i}.content.{j}.image.source") from exc
                if kind == "toolUse":
                    uses_tools = True
                    if role != "assistant":
                        raise _Invalid("toolUse blocks belong to assistant turns")
                    tool = block["toolUse"]
                    if not tool.get("toolUseId") or not tool.get("name") or \
                            not isinstance(tool.get("input"), dict):
                        raise _Invalid("toolUse needs toolUseId, name and an input object")
                    declared.add(tool["toolUseId"])
                if kind == "toolResult":
                    uses_tools = True
                    result = block["toolResult"]
                    if role != "user" or result.get("toolUseId") not in tool_ids:
                        raise _Invalid("toolResult must answer a toolUse of the previous turn")
                    if not isinstance(result.get("content"), list):
                        raise _Invalid("toolResult.content must be a list")
                    answered.add(result["toolUseId"])
            if role == "user" and tool_ids and answered != tool_ids:
                raise _Invalid("every toolUse needs a toolResult in the next turn")
            tool_ids = declared
        if uses_tools and "toolConfig" not in body:
            raise _Invalid("The toolConfig field must be defined when using toolUse and "
                           "toolResult content blocks.")
        system = body.get("system")
        if system is not None and (not isinstance(system, list) or not all(
                isinstance(b, dict) and len(b) == 1 and ("text" in b or "cachePoint" in b)
                for b in system)):
            raise _Invalid("system: a list of {text} or {cachePoint} blocks")
        inference = body.get("inferenceConfig") or {}
        if set(inference) - _INFERENCE:
            raise _Invalid(f"inferenceConfig: unknown field {sorted(set(inference) - _INFERENCE)}")
        config = body.get("toolConfig")
        if config is not None:
            tools = config.get("tools")
            if not isinstance(tools, list) or not tools:
                raise _Invalid("toolConfig.tools: at least one tool")
            for tool in tools:
                spec = tool.get("toolSpec")
                if spec is None and tool != {"cachePoint": {"type": "default"}}:
                    raise _Invalid("toolConfig.tools: toolSpec or cachePoint")
                if spec is not None and (not spec.get("name") or not isinstance(
                        (spec.get("inputSchema") or {}).get("json"), dict)):
                    raise _Invalid("toolSpec needs a name and inputSchema.json")
            choice = config.get("toolChoice")
            if choice is not None and (len(choice) != 1 or
                                       next(iter(choice)) not in ("auto", "any", "tool")):
                raise _Invalid("toolConfig.toolChoice: one of auto, any, tool")

    def _answer(self, body: dict[str, Any], state: _State) -> tuple[list[dict[str, Any]], str]:
        last = body["messages"][-1]
        has_results = any("toolResult" in b for b in last["content"])
        text = "Echo: " + " ".join(_texts(last["content"]))
        blocks: list[dict[str, Any]] = []
        if state.reasoning:
            blocks.append({"reasoningContent": {"reasoningText": {
                "text": "Thinking it over.", "signature": "sig-fake"}}})
        if state.tool_use is not None and body.get("toolConfig") and not has_results:
            name, arguments = state.tool_use
            blocks.append({"text": "Let me check."})
            blocks.append({"toolUse": {"toolUseId": f"tooluse_fake{len(state.requests)}",
                                       "name": name, "input": arguments}})
            return blocks, "tool_use"
        blocks.append({"text": text})
        return blocks, "end_turn"

    @staticmethod
    def _usage(body: dict[str, Any], blocks: list[dict[str, Any]],
               state: _State) -> dict[str, Any]:
        figures = state.usage
        prompt = _words([t for m in body["messages"] for t in _texts(m["content"])])
        reply = _words([b["text"] for b in blocks if "text" in b])
        plain = figures.get("input", prompt)
        read, write = figures.get("read", 0), figures.get("write", 0)
        output = figures.get("output", reply)
        usage: dict[str, Any] = {"inputTokens": plain, "outputTokens": output,
                                 "totalTokens": plain + read + write + output}
        if read or write:
            write_1h = figures.get("write_1h", 0)
            usage.update({"cacheReadInputTokens": read, "cacheWriteInputTokens": write,
                          "cacheReadInputTokenCount": read, "cacheWriteInputTokenCount": write,
                          "cacheDetails": [d for d in (
                              {"ttl": "5m", "inputTokens": write - write_1h},
                              {"ttl": "1h", "inputTokens": write_1h}) if d["inputTokens"]]})
        return usage

    async def _stream(self, request: web.Request, fault: Fault, blocks: list[dict[str, Any]],
                      stop: str, usage: dict[str, Any]) -> web.StreamResponse:
        frames = [_event_frame("messageStart", {"role": "assistant"})]
        for index, block in enumerate(blocks):
            if "text" in block:
                words = block["text"].split(" ")
                frames += [_event_frame("contentBlockDelta", {
                    "contentBlockIndex": index,
                    "delta": {"text": w if i == 0 else " " + w}}) for i, w in enumerate(words)]
            elif "toolUse" in block:
                tool = block["toolUse"]
                frames.append(_event_frame("contentBlockStart", {
                    "contentBlockIndex": index,
                    "start": {"toolUse": {"toolUseId": tool["toolUseId"],
                                          "name": tool["name"]}}}))
                encoded = json.dumps(tool["input"])
                half = len(encoded) // 2
                frames += [_event_frame("contentBlockDelta", {
                    "contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}})
                    for piece in (encoded[:half], encoded[half:])]
            else:
                reasoning = block["reasoningContent"]["reasoningText"]
                frames.append(_event_frame("contentBlockDelta", {
                    "contentBlockIndex": index,
                    "delta": {"reasoningContent": {"text": reasoning["text"]}}}))
                frames.append(_event_frame("contentBlockDelta", {
                    "contentBlockIndex": index,
                    "delta": {"reasoningContent": {"signature": reasoning["signature"]}}}))
            frames.append(_event_frame("contentBlockStop", {"contentBlockIndex": index}))
        frames.append(_event_frame("messageStop", {"stopReason": stop}))
        if not fault.omit_metadata:
            frames.append(_event_frame("metadata", {"usage": usage,
                                                    "metrics": {"latencyMs": 20}}))
        response = web.StreamResponse(status=200, headers={
            "content-type": "application/vnd.amazon.eventstream",
            "x-amzn-requestid": "fake-request"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for sent, frame in enumerate(frames):
            if fault.break_after is not None and sent >= fault.break_after:
                await hang_up(request)
            if fault.exception_after is not None and sent >= fault.exception_after:
                await response.write(_exception_frame(fault.exception_type, fault.message))
                break
            # split each frame in two writes: the decoder must reassemble frames
            await response.write(frame[:7])
            await response.write(frame[7:])
        await response.write_eof()
        return response

    # --- InvokeModel: embeddings ------------------------------------------------------------

    def _invoke(self, model: str, body: Any) -> web.Response:
        if "titan-embed" in model:
            if not isinstance(body, dict) or not isinstance(body.get("inputText"), str) or \
                    set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}:
                return self._reject("Titan: inputText (string) and optional dimensions")
            text = body["inputText"]
            size = body.get("dimensions", 4)
            vector = [round(len(text) / 100 + i / 10, 4) for i in range(size)]
            return web.json_response({"embedding": vector,
                                      "inputTextTokenCount": len(text.split()) + 1})
        if "cohere.embed" in model:
            if not isinstance(body, dict) or not isinstance(body.get("texts"), list) or \
                    not body.get("input_type"):
                return self._reject("Cohere: texts (list) and input_type are required")
            texts = body["texts"]
            size = body.get("output_dimension", 3)
            vectors = [[round(len(t) / 100 + i / 10, 4) for i in range(size)] for t in texts]
            tokens = sum(len(t.split()) for t in texts)
            embeddings: Any = {"float": vectors} if "embedding_types" in body else vectors
            return web.json_response(
                {"id": "emb-fake", "embeddings": embeddings, "texts": texts,
                 "response_type": "embeddings_by_type" if "embedding_types" in body
                 else "embeddings_floats"},
                headers={"X-Amzn-Bedrock-Input-Token-Count": str(tokens)})
        return self._error(400, "ValidationException", f"the model {model} is not an "
                                                       "embedding model")


def running_fake_bedrock(key: AccessKey | None = None) -> AbstractContextManager[FakeBedrock]:
    return serving(FakeBedrock(key))
