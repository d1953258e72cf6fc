"""A fake OpenAI API server on 127.0.0.1, speaking the real wire format, with fault injection.

It runs aiohttp.web on its own event loop in a background thread, so a test can make it fail
the way real upstreams fail at the socket level: a status code with OpenAI's error body, a slow
answer, a connection closed with no response, a stream cut off in the middle.

    POST /v1/chat/completions   JSON, or SSE when `stream: true` (usage chunk with
                                `choices: []` before `data: [DONE]` when
                                `stream_options.include_usage` is set)
    POST /v1/embeddings
    GET  /v1/models

Replies are deterministic: the assistant answers "Echo: <last user message>" ("Echo: <tool
output>" when the conversation ends with a `tool` message). `reply_with_tool_call(name, args)`
makes requests that offer tools get a tool call instead (`finish_reason: tool_calls`; streamed
as an id/name chunk, then the arguments in two pieces). Usage defaults to word counts; a test
sets exact figures (cached and reasoning tokens included) with `set_usage`.
Every request is recorded (method, path, headers, parsed JSON body) before any fault applies.

Faults come from two places, checked in this order:
- a one-shot FIFO script (`script(...)`): each request takes the next fault, whatever its model;
- per-model faults (`fail(model, fault)`): every request for that model, until `reset()`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer, Recorder, hang_up, serving

__all__ = [
    "Fault",
    "FakeOpenAI",
    "RecordedRequest",
    "UsageFigures",
    "break_stream_after",
    "drop_connection",
    "error_status",
    "fail_stream_before_first_chunk",
    "malformed_body",
    "running_fake_openai",
    "slow_first_chunk",
    "slow_headers",
    "slow_stream",
    "stream_without_done",
]

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass(frozen=True)
class Fault:
    """One way to misbehave. Fields combine: `delay` then `status`, for instance."""

    status: int | None = None
    message: str | None = None
    code: str | None = None
    param: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False
    fail_before_first_chunk: bool = False
    break_after: int | None = None
    first_chunk_delay: float = 0.0
    event_interval: float = 0.0
    omit_done: bool = False
    malformed_body: bool = False


def error_status(status: int, message: str | None = None, *, code: str | None = None,
                 param: str | None = None, retry_after: str | None = None) -> Fault:
    """Answer with `status` and OpenAI's error body (`Retry-After` too when given)."""
    return Fault(status=status, message=message, code=code, param=param,
                 retry_after=retry_after)


def slow_headers(seconds: float) -> Fault:
    """Send nothing at all, not even headers, for `seconds`; then answer normally."""
    return Fault(delay=seconds)


def drop_connection() -> Fault:
    """Read the request, then close the socket without sending a byte."""
    return Fault(drop=True)


def fail_stream_before_first_chunk() -> Fault:
    """Stream: send `200` and the SSE headers, then close the socket before any event."""
    return Fault(fail_before_first_chunk=True)


def break_stream_after(events: int) -> Fault:
    """Stream: send `events` data events, then close the socket (no [DONE], no final chunk)."""
    return Fault(break_after=events)


def slow_first_chunk(seconds: float) -> Fault:
    """Stream: send the headers at once, the first event only after `seconds`."""
    return Fault(first_chunk_delay=seconds)


def slow_stream(seconds_between_events: float) -> Fault:
    """Stream: pause this long before each event after the first (a slow generation)."""
    return Fault(event_interval=seconds_between_events)


def malformed_body() -> Fault:
    """Answer `200 application/json` with a body that is not JSON."""
    return Fault(malformed_body=True)


def stream_without_done() -> Fault:
    """Stream: every event, a properly ended HTTP body, but no `data: [DONE]`."""
    return Fault(omit_done=True)


@dataclass(frozen=True)
class UsageFigures:
    """Usage the fake reports instead of word counts (None: keep the word count)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None


def _dumps(value: Any, spaced: bool) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(value, separators=separators).encode()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def reply_text(messages: Any) -> str:
    """The fake's deterministic answer to a chat request."""
    last_user = ""
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict) \
            and messages[-1].get("role") == "tool":
        return f"Echo: {_text_of(messages[-1].get('content'))}"
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                last_user = _text_of(message.get("content"))
                break
    return f"Echo: {last_user}"


@dataclass
class _State:
    script: deque[Fault] = field(default_factory=deque)
    by_model: dict[str, Fault] = field(default_factory=dict)
    usage: UsageFigures | None = None
    raw_usage: dict[str, Any] | None = None
    spaced_json: bool = False
    expected_key: str | None = None
    tool_call: tuple[str, dict[str, Any]] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    abandoned_streams: int = 0


class FakeOpenAI(Recorder, LoopbackServer):
    """The fake server. Start it with `running_fake_openai()`; share it, `reset()` per test."""

    name = "fake-openai"
    label = "fake OpenAI"
    state_type = _State
    fault_type = Fault
    model_ids = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._counter = 0

    # --- what tests use ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def abandoned_streams(self) -> int:
        """Streams whose client (the gateway) went away before the fake had finished."""
        with self._lock:
            return self._state.abandoned_streams

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def fail(self, model: str, fault: Fault) -> None:
        """Every request for `model` misbehaves this way until reset."""
        with self._lock:
            self._state.by_model[model] = fault

    def set_usage(self, *, prompt_tokens: int | None = None,
                  completion_tokens: int | None = None, cached_tokens: int = 0,
                  reasoning_tokens: int = 0) -> None:
        with self._lock:
            self._state.usage = UsageFigures(prompt_tokens, completion_tokens, cached_tokens,
                                             reasoning_tokens)

    def set_raw_usage(self, usage: dict[str, Any]) -> None:
        """Report exactly this `usage` object, however wrong (a misbehaving upstream)."""
        with self._lock:
            self._state.raw_usage = usage

    def use_spaced_json(self, spaced: bool = True) -> None:
        """Write JSON as Python's json.dumps does by default (`"key": value`), like many
        self-hosted OpenAI-compatible servers, instead of OpenAI's compact form."""
        with self._lock:
            self._state.spaced_json = spaced

    def reply_with_tool_call(self, name: str, arguments: dict[str, Any]) -> None:
        """Requests that offer tools (and do not end with a tool result) get this call."""
        with self._lock:
            self._state.tool_call = (name, arguments)

    def require_key(self, key: str | None) -> None:
        """Answer 401 (OpenAI's invalid_api_key body) unless the request carries this key."""
        with self._lock:
            self._state.expected_key = key

    # --- server -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)

    # --- request handling -------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> tuple[Any, Fault | None, _State]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        with self._lock:
            state = self._state
            state.requests.append(record)
            if state.script:
                fault: Fault | None = state.script.popleft()
            else:
                fault = state.by_model.get(record.model or "")
        return body, fault, state

    def _error(self, status: int, message: str, *, code: str | None = None,
               param: str | None = None, headers: dict[str, str] | None = None,
               spaced: bool = False) -> web.Response:
        fallback = ("invalid_request_error" if status < 500 else "server_error", None)
        kind, default_code = _ERROR_TYPES.get(status, fallback)
        body = {"error": {"message": message, "type": kind, "param": param,
                          "code": code or default_code}}
        return web.Response(status=status, body=_dumps(body, spaced),
                            content_type="application/json", headers=headers)

    async def _before_headers(self, request: web.Request, fault: Fault | None,
                              state: _State) -> web.StreamResponse | None:
        """Apply the parts of a fault that happen before any response byte; a response (or
        a dropped connection) ends the request here."""
        expected = state.expected_key
        if expected is not None:
            sent = request.headers.get("authorization", "")
            if sent != f"Bearer {expected}":
                return self._error(401, "Incorrect API key provided.", spaced=state.spaced_json)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            await hang_up(request)
        if fault.status is not None:
            headers = {"retry-after": fault.retry_after} if fault.retry_after else None
            message = fault.message or f"The fake upstream answered HTTP {fault.status}."
            return self._error(fault.status, message, code=fault.code, param=fault.param,
                               headers=headers, spaced=state.spaced_json)
        if fault.malformed_body:
            return web.Response(body=b"<html>502 Bad Gateway</html>",
                                content_type="application/json")
        return None

    def _usage(self, state: _State, prompt: int, completion: int) -> dict[str, Any]:
        if state.raw_usage is not None:
            return state.raw_usage
        figures = state.usage or UsageFigures()
        prompt = figures.prompt_tokens if figures.prompt_tokens is not None else prompt
        completion = (figures.completion_tokens if figures.completion_tokens is not None
                      else completion)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": figures.cached_tokens,
                                      "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": figures.reasoning_tokens,
                                          "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        }

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-fake{self._counter:06d}"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, fault, state = await self._receive(request)
        early = await self._before_headers(request, fault, state)
        if early is not None:
            return early
        if not isinstance(body, dict):
            return self._error(400, "We could not parse the JSON body of your request.")
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", param="model")
        if not isinstance(messages, list) or not messages:
            return self._error(400, "Missing required parameter: 'messages'.",
                               param="messages")
        text = reply_text(messages)
        call = None
        if state.tool_call is not None and body.get("tools") and not (
                isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"):
            name, arguments = state.tool_call
            call = {"id": self._next_id("call"), "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)}}
        prompt_words = sum(len(_text_of(m.get("content")).split())
                           for m in messages if isinstance(m, dict))
        usage = self._usage(state, prompt_words, len(text.split()))
        ident = self._next_id("chatcmpl")
        if body.get("stream"):
            options = body.get("stream_options") or {}
            return await self._stream(request, fault or Fault(), state, ident, model, text,
                                      usage if options.get("include_usage") else None, call)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None,
                                   "annotations": []}
        if call is not None:
            message["content"] = None
            message["tool_calls"] = [call]
        reply = {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if call is not None else "stop",
            }],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        return web.Response(body=_dumps(reply, state.spaced_json),
                            content_type="application/json")

    async def _stream(self, request: web.Request, fault: Fault, state: _State, ident: str,
                      model: str, text: str, usage: dict[str, Any] | None,
                      call: dict[str, Any] | None = None) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"content-type": "text/event-stream; charset=utf-8",
                                 "cache-control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if fault.fail_before_first_chunk:
            await hang_up(request)
        if fault.first_chunk_delay:
            await asyncio.sleep(fault.first_chunk_delay)
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            event: dict[str, Any] = {
                "id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}],
            }
            if usage is not None:
                event["usage"] = None
            return event

        words = text.split(" ")
        events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        if call is None:
            events += [chunk({"content": w if i == 0 else " " + w}, None)
                       for i, w in enumerate(words)]
            events.append(chunk({}, "stop"))
        else:
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            events.append(chunk({"tool_calls": [{
                "index": 0, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}]}, None))
            events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                             None) for piece in (arguments[:half], arguments[half:])]
            events.append(chunk({}, "tool_calls"))
        if usage is not None:
            events.append({"id": ident, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": "fp_fake", "choices": [],
                           "usage": usage})
        finished = False
        try:
            for sent, event in enumerate(events):
                if fault.break_after is not None and sent >= fault.break_after:
                    finished = True
                    await hang_up(request)
                if sent and fault.event_interval:
                    await asyncio.sleep(fault.event_interval)
                await response.write(b"data: " + _dumps(event, state.spaced_json) + b"\n\n")
            finished = True
            if fault.break_after is not None:
                await hang_up(request)
            if not fault.omit_done:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            if not finished:
                with self._lock:
                    state.abandoned_streams += 1
            raise
        return response

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, fault, state = await self._receive(request)
        early = await self._before_headers(request, fault, state)
        if early is not None:
            return early
        if not isinstance(body, dict) or "input" not in body:
            return self._error(400, "Missing required parameter: 'input'.", param="input")
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = body.get("dimensions") or 8
        data = []
        tokens = 0
        for index, item in enumerate(items):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += max(1, len(text.split()))
            digest = hashlib.sha256(text.encode()).digest()
            vector = [round(digest[i % len(digest)] / 255 * 2 - 1, 6) for i in range(dimensions)]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        figures = state.usage
        if figures is not None and figures.prompt_tokens is not None:
            tokens = figures.prompt_tokens
        reply = {"object": "list", "data": data, "model": body.get("model"),
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return web.Response(body=_dumps(reply, state.spaced_json),
                            content_type="application/json")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        _, fault, state = await self._receive(request)
        early = await self._before_headers(request, fault, state)
        if early is not None:
            return early
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for m in self.model_ids]
        return web.Response(body=_dumps({"object": "list", "data": data}, state.spaced_json),
                            content_type="application/json")


def running_fake_openai() -> AbstractContextManager[FakeOpenAI]:
    """Start a fake on a free loopback port; stop it on exit."""
    return serving(FakeOpenAI())
