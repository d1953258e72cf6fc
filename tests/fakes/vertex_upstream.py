"""A fake Google Vertex AI on 127.0.0.1, with its own fake OAuth token endpoint.

    POST /token     OAuth 2.0 JWT-bearer grant, as google-auth's service-account credentials
                    send it: the assertion's RS256 signature is verified against the test key's
                    public half (google.auth.jwt.decode), its audience (Google's token URL);
                    the
                    answer is a fresh access token with `expires_in` (`token_lifetime`)
    POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
    POST …/publishers/google/models/{m}:streamGenerateContent?alt=sse   data-only SSE chunks,
                    each with **running** usageMetadata totals, the last with finishReason
    POST …/publishers/google/models/{m}:predict        text embeddings
    POST …/publishers/anthropic/models/{m}:rawPredict / :streamRawPredict   Claude on Vertex:
                    Anthropic's Messages body without `model`, with
                    `anthropic_version: vertex-2023-10-16`; Anthropic's reply and SSE events

**Verification.** Every model call must carry `Authorization: Bearer <a token this fake
issued and that has not expired>` (else 401 UNAUTHENTICATED), for the configured project and a
known location. Gemini bodies are checked (known top-level fields, roles user/model, one
known member per part, functionResponse with a name, known generationConfig fields, function
declarations with a name and a schema) and refused with 400 INVALID_ARGUMENT otherwise.

**Replies** are deterministic ("Echo: <last user text>", "Echo: <function response>" after
tool results); `reply_with_function_call` makes requests offering tools call a function.
Usage defaults to word counts; `set_usage` sets Gemini's figures exactly (prompt *including*
cached tokens, candidates, thoughts, tool-use prompt).

Faults: a FIFO `script(...)` of `Fault`s, each taken by the next model call.
"""

from __future__ import annotations

import json
import time
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from tests.fakes.loopback import LoopbackServer, Recorder, RejectionLog, hang_up, serving

__all__ = ["FakeVertex", "Fault", "RecordedRequest", "running_fake_vertex",
           "service_account_info"]

PROJECT = "tollgate-test"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience google-auth puts in its assertions, whatever the key's token_uri says."""
_TOP_LEVEL = frozenset({"contents", "systemInstruction", "tools", "toolConfig",
                        "generationConfig", "safetySettings", "cachedContent", "labels"})
_PART_KEYS = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse",
                        "executableCode", "codeExecutionResult"})
_PART_EXTRAS = frozenset({"thought", "thoughtSignature", "videoMetadata"})
_GENERATION = frozenset({"maxOutputTokens", "temperature", "topP", "topK", "stopSequences",
                         "candidateCount", "seed", "presencePenalty", "frequencyPenalty",
                         "responseMimeType", "responseSchema", "responseJsonSchema",
                         "thinkingConfig", "responseLogprobs", "logprobs"})
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    message: str = "Resource exhausted. Please try again later."
    break_after: int | None = None
    drop: bool = False
    omit_finish: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    model: str
    action: str
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    script: deque[Fault] = field(default_factory=deque)
    usage: dict[str, int] = field(default_factory=dict)
    function_call: tuple[str, dict[str, Any]] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)


class _Invalid(Exception):
    pass


def _key_pair() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def service_account_info(private_key: str, token_uri: str,
                         email: str = "tollgate@tollgate-test.iam.gserviceaccount.com"
                         ) -> dict[str, str]:
    """A service-account JSON key whose token_uri is the fake's endpoint."""
    return {"type": "service_account", "project_id": PROJECT, "private_key_id": "fake-key-1",
            "private_key": private_key, "client_email": email, "client_id": "1",
            "token_uri": token_uri}


def _text_of(parts: Any) -> str:
    texts = []
    for part in parts if isinstance(parts, list) else ():
        if "text" in part and not part.get("thought"):
            texts.append(part["text"])
        elif "functionResponse" in part:
            response = part["functionResponse"].get("response") or {}
            texts.append(str(response.get("content", response.get("error", ""))))
    return " ".join(texts)


class FakeVertex(Recorder, RejectionLog, LoopbackServer):
    name = "fake-vertex"
    state_type = _State
    fault_type = Fault

    def __init__(self, token_lifetime: int = 3600) -> None:
        super().__init__()
        self.private_key, self._public_key = _key_pair()
        self.token_lifetime = token_lifetime
        self._tokens: dict[str, float] = {}  # token → expiry (time.time())
        self._minted = 0

    # --- what tests use ---------------------------------------------------------------------

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def service_account(self) -> dict[str, str]:
        return service_account_info(self.private_key, self.token_uri)

    @property
    def tokens_minted(self) -> int:
        with self._lock:
            return self._minted

    def set_usage(self, *, prompt: int, candidates: int | None, thoughts: int = 0,
                  cached: int = 0, tool_prompt: int = 0) -> None:
        figures = {"prompt": prompt, "thoughts": thoughts, "cached": cached,
                   "tool_prompt": tool_prompt}
        if candidates is not None:
            figures["candidates"] = candidates
        with self._lock:
            self._state.usage = figures

    def reply_with_function_call(self, name: str, args: dict[str, Any]) -> None:
        with self._lock:
            self._state.function_call = (name, args)

    def expire_tokens(self) -> None:
        """Every issued token stops working (as if an hour had passed)."""
        with self._lock:
            self._tokens = {token: 0.0 for token in self._tokens}

    # --- server -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/{tail:.*}", self._model_call)

    async def _token(self, request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        grant = (form.get("grant_type") or [""])[0]
        assertion = (form.get("assertion") or [""])[0]
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(assertion, certs=self._public_key,
                                audience=[GOOGLE_TOKEN_AUDIENCE, self.token_uri])
        except ValueError as exc:
            return web.json_response({"error": "invalid_grant",
                                      "error_description": str(exc)}, status=400)
        if "cloud-platform" not in str(claims.get("scope", "")):
            return web.json_response({"error": "invalid_scope"}, status=400)
        with self._lock:
            self._minted += 1
            token = f"ya29.fake-{self._minted}"
            self._tokens[token] = time.time() + self.token_lifetime
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime,
                                  "token_type": "Bearer"})

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": {"code": status, "message": message,
                                            "status": _STATUS.get(status, "UNKNOWN")}},
                                 status=status)

    def _reject(self, problem: str) -> web.Response:
        with self._lock:
            self._state.rejections.append(problem)
        return self._error(400, problem)

    async def _model_call(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.path
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        parts = path.split("/")
        # /v1/projects/{p}/locations/{l}/publishers/{pub}/models/{model:action}
        if len(parts) != 10 or parts[2] != "projects" or parts[6] != "publishers":
            return self._error(404, f"unknown path {path}")
        project, location, publisher = parts[3], parts[5], parts[7]
        model, _, action = parts[9].partition(":")
        with self._lock:
            state = self._state
            state.requests.append(RecordedRequest(path, model, action, headers, body))
            fault = state.script.popleft() if state.script else None
            scheme, _, token = headers.get("authorization", "").partition(" ")
            expiry = self._tokens.get(token)
        if scheme != "Bearer" or expiry is None or expiry < time.time():
            return self._error(401, "Request had invalid authentication credentials.")
        if project != PROJECT:
            return self._error(403, f"Permission denied on project {project}")
        if fault is not None and fault.drop:
            await hang_up(request)
        if fault is not None and fault.status is not None:
            return self._error(fault.status, fault.message)
        if publisher == "anthropic":
            return await self._claude(request, body, model, action, fault or Fault())
        if action == "predict":
            return self._predict(body)
        stream = action == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            return self._reject("this fake streams with ?alt=sse only")
        if action not in ("generateContent", "streamGenerateContent"):
            return self._error(404, f"unknown action {action}")
        try:
            self._check(body)
        except _Invalid as exc:
            return self._reject(str(exc))
        reply_parts, finish = self._answer(body, state)
        if stream:
            return await self._stream(request, body, reply_parts, finish, state,
                                      fault or Fault(), location)
        return web.json_response({
            "candidates": [{"content": {"role": "model", "parts": reply_parts},
                            "finishReason": finish, "index": 0}],
            "usageMetadata": self._usage(body, reply_parts, state),
            "modelVersion": model, "responseId": "resp-fake"})

    def _check(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _Invalid("the body must be a JSON object")
        extra = sorted(set(body) - _TOP_LEVEL)
        if extra:
            raise _Invalid(f"Invalid JSON payload received. Unknown name \"{extra[0]}\"")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _Invalid("contents is not specified")
        for i, content in enumerate(contents):
            if content.get("role") not in ("user", "model"):
                raise _Invalid(f"contents[{i}].role must be user or model")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                raise _Invalid(f"contents[{i}].parts must not be empty")
            for j, part in enumerate(parts):
                data = set(part) - _PART_EXTRAS
                if len(data) != 1 or not data <= _PART_KEYS:
                    raise _Invalid(f"contents[{i}].parts[{j}]: exactly one data member")
                if "functionResponse" in part and not part["functionResponse"].get("name"):
                    raise _Invalid(f"contents[{i}].parts[{j}].functionResponse.name is empty")
                if "functionCall" in part and content["role"] != "model":
                    raise _Invalid("functionCall parts belong to model turns")
        system = body.get("systemInstruction")
        if system is not None and not isinstance(system.get("parts"), list):
            raise _Invalid("systemInstruction.parts must be a list")
        generation = body.get("generationConfig") or {}
        if set(generation) - _GENERATION:
            raise _Invalid(f"generationConfig: unknown {sorted(set(generation) - _GENERATION)}")
        for tool in body.get("tools") or ():
            for declaration in tool.get("functionDeclarations") or ():
                if not declaration.get("name") or not (
                        "parameters" in declaration or "parametersJsonSchema" in declaration):
                    raise _Invalid("function declarations need a name and a schema")

    def _answer(self, body: dict[str, Any], state: _State) -> tuple[list[dict[str, Any]], str]:
        last = body["contents"][-1]
        answered = any("functionResponse" in p for p in last["parts"])
        if state.function_call is not None and body.get("tools") and not answered:
            name, args = state.function_call
            return [{"text": "Let me check."}, {"functionCall": {"name": name, "args": args}}], \
                "STOP"
        return [{"text": f"Echo: {_text_of(last['parts'])}"}], "STOP"

    @staticmethod
    def _usage(body: dict[str, Any], reply: list[dict[str, Any]], state: _State,
               candidates: int | None = None) -> dict[str, Any]:
        figures = state.usage
        prompt = figures.get("prompt", sum(len(_text_of(c["parts"]).split())
                                           for c in body["contents"]))
        produced = candidates if candidates is not None else figures.get(
            "candidates", len(_text_of(reply).split()))
        meta: dict[str, Any] = {"promptTokenCount": prompt}
        if "candidates" in figures or not figures:
            meta["candidatesTokenCount"] = produced
        for key, name in (("thoughts", "thoughtsTokenCount"),
                          ("cached", "cachedContentTokenCount"),
                          ("tool_prompt", "toolUsePromptTokenCount")):
            if figures.get(key):
                meta[name] = figures[key]
        meta["totalTokenCount"] = prompt + (meta.get("candidatesTokenCount") or 0) + \
            figures.get("thoughts", 0) + figures.get("tool_prompt", 0)
        return meta

    async def _stream(self, request: web.Request, body: dict[str, Any],
                      reply: list[dict[str, Any]], finish: str, state: _State, fault: Fault,
                      location: str) -> web.StreamResponse:
        chunks: list[dict[str, Any]] = []
        pieces: list[dict[str, Any]] = []
        for part in reply:
            if "text" in part:
                words = part["text"].split(" ")
                pieces += [{"text": w if i == 0 else " " + w} for i, w in enumerate(words)]
            else:
                pieces.append(part)
        final = self._usage(body, reply, state)
        for i, piece in enumerate(pieces):
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [piece]},
                                         "index": 0}
            last = i == len(pieces) - 1
            if last and not fault.omit_finish:
                candidate["finishReason"] = finish
            running = dict(final)
            if not last and "candidatesTokenCount" in running:
                running["candidatesTokenCount"] = i + 1  # running totals, not deltas
            chunks.append({"candidates": [candidate], "usageMetadata": running,
                           "modelVersion": "fake", "responseId": f"resp-{location}"})
        response = web.StreamResponse(status=200, headers={
            "content-type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for sent, chunk in enumerate(chunks):
            if fault.break_after is not None and sent >= fault.break_after:
                await hang_up(request)
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
        await response.write_eof()
        return response

    @staticmethod
    def _predict(body: Any) -> web.Response:
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or not instances or not all(
                isinstance(i, dict) and isinstance(i.get("content"), str) for i in instances):
            return FakeVertex._error(400, "instances: a list of {content}")
        size = ((body.get("parameters") or {}).get("outputDimensionality")) or 3
        predictions = [{"embeddings": {
            "values": [round(len(i["content"]) / 100 + k / 10, 4) for k in range(size)],
            "statistics": {"token_count": len(i["content"].split()) + 1, "truncated": False}}}
            for i in instances]
        return web.json_response({"predictions": predictions,
                                  "metadata": {"billableCharacterCount": 7}})

    async def _claude(self, request: web.Request, body: Any, model: str, action: str,
                      fault: Fault) -> web.StreamResponse:
        if not isinstance(body, dict) or body.get("anthropic_version") != "vertex-2023-10-16":
            return self._reject("anthropic_version must be vertex-2023-10-16")
        if "model" in body:
            return self._reject("model: Extra inputs are not permitted (it is in the URL)")
        if not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return self._reject("max_tokens and messages are required")
        last = body["messages"][-1]
        content = last.get("content")
        text = content if isinstance(content, str) else " ".join(
            str(b.get("text", "")) for b in content if b.get("type") == "text")
        reply = f"Echo: {text}"
        figures = self._state.usage
        usage = {"input_tokens": figures.get("prompt", len(text.split())),
                 "output_tokens": figures.get("candidates", len(reply.split())),
                 "cache_read_input_tokens": figures.get("cached", 0),
                 "cache_creation_input_tokens": 0}
        message = {"id": "msg_vrtx_fake", "type": "message", "role": "assistant",
                   "model": model, "content": [{"type": "text", "text": reply}],
                   "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
        if action == "rawPredict":
            return web.json_response(message)
        if action != "streamRawPredict" or body.get("stream") is not True:
            return self._reject("streamRawPredict needs `stream: true`")
        events = [("message_start", {"type": "message_start", "message": {
            **message, "content": [], "stop_reason": None,
            "usage": {**usage, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}})]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta",
                                                      "text": w if i == 0 else " " + w}})
                   for i, w in enumerate(reply.split(" "))]
        events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   ("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": "end_turn",
                                                "stop_sequence": None},
                                      "usage": {"output_tokens": usage["output_tokens"]}}),
                   ("message_stop", {"type": "message_stop"})]
        response = web.StreamResponse(status=200, headers={"content-type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for sent, (name, data) in enumerate(events):
            if fault.break_after is not None and sent >= fault.break_after:
                await hang_up(request)
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response


def running_fake_vertex(token_lifetime: int = 3600) -> AbstractContextManager[FakeVertex]:
    return serving(FakeVertex(token_lifetime))
