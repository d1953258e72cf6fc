"""A fake Anthropic Messages API on 127.0.0.1: the real wire format, fault injection, and
checks of what the gateway sends.

It runs aiohttp.web on its own event loop in a background thread, like the fake OpenAI server.

    POST /v1/messages               JSON, or named SSE events when `stream: true`:
                                    message_start (input + cache usage, placeholder output),
                                    per block content_block_start / ping / *_delta / _stop,
                                    message_delta (stop reason, cumulative usage), message_stop
    POST /v1/messages/count_tokens  {"input_tokens": N}

**Verification.** Like the real API, it answers `401 authentication_error` when neither
`x-api-key` nor `Authorization: Bearer` (what the newest SDKs send) carries the key set with
`require_key`, and `400 invalid_request_error` when the `anthropic-version` header is missing
or not a known version, or the body breaks the Messages API's rules: unknown
top-level fields, no `model`/`max_tokens`/`messages`, roles other than user/assistant or not
alternating, unknown content blocks, a `tool_result` that does not answer a `tool_use` of the
previous assistant turn or is not at the start of its turn, tools without `input_schema`,
temperature above 1. A test can therefore trust that a 200 means the shape was right.

**Replies** are deterministic: "Echo: <last user text>", or "Echo: <tool result text>" when the
last user turn carries tool results. `reply_with_tool_use(name, input)` makes requests that
offer tools get a text block plus a `tool_use` block (stop reason `tool_use`); with
`thinking=True` a thinking block comes first. Usage defaults to word counts; `set_usage` sets
exact figures, cache reads and writes included.

Faults come from a one-shot FIFO script (`script(...)`) or per model (`fail(model, fault)`).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer, Recorder, RejectionLog, hang_up, serving

__all__ = [
    "API_VERSION",
    "FakeAnthropic",
    "Fault",
    "RecordedRequest",
    "break_stream_after",
    "drop_connection",
    "error_event_after",
    "error_status",
    "running_fake_anthropic",
    "slow_headers",
    "stream_without_stop",
]

API_VERSION = "2023-06-01"
_KNOWN_VERSIONS = frozenset({API_VERSION, "2026-10-21"})  # what the pinned SDK sends

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}

_TOP_LEVEL = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking", "service_tier",
    "container", "mcp_servers", "context_management", "cache_control", "diagnostics",
    "inference_geo", "output_config", "speed", "user_profile_id", "workspace_id",
})
_COUNT_TOP_LEVEL = frozenset({"model", "messages", "system", "tools", "tool_choice",
                              "thinking", "mcp_servers", "context_management"})
_BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking",
                     "redacted_thinking"})


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    message: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False
    break_after: int | None = None
    error_after: int | None = None
    omit_stop: bool = False


def error_status(status: int, message: str | None = None, *,
                 retry_after: str | None = None) -> Fault:
    """Answer `status` with Anthropic's error body (`overloaded_error` for 529 …)."""
    return Fault(status=status, message=message, retry_after=retry_after)


def slow_headers(seconds: float) -> Fault:
    return Fault(delay=seconds)


def drop_connection() -> Fault:
    return Fault(drop=True)


def break_stream_after(events: int) -> Fault:
    """Stream: send `events` events, then close the socket."""
    return Fault(break_after=events)


def error_event_after(events: int) -> Fault:
    """Stream: send `events` events, then `event: error` (overloaded_error), as Anthropic does
    when it is overloaded after a stream has started."""
    return Fault(error_after=events)


def stream_without_stop() -> Fault:
    """Stream: every event but the final message_stop, then a properly ended body."""
    return Fault(omit_stop=True)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


@dataclass
class _State:
    script: deque[Fault] = field(default_factory=deque)
    by_model: dict[str, Fault] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    tool_use: tuple[str, dict[str, Any]] | None = None
    thinking: bool = False
    count: int | None = None
    expected_key: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)


class _Invalid(Exception):
    pass


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "tool_result":
            texts.append(_text_of(block.get("content")))
    return " ".join(texts)


def _words(text: str) -> int:
    return len(text.split())


class FakeAnthropic(Recorder, RejectionLog, LoopbackServer):
    """The fake server. Start it with `running_fake_anthropic()`; share it, `reset()` per test.
    Its `base_url` is the API root (Anthropic's base URL has no /v1)."""

    name = "fake-anthropic"
    label = "fake Anthropic"
    state_type = _State
    fault_type = Fault

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._counter = 0

    # --- what tests use ---------------------------------------------------------------------

    def fail(self, model: str, fault: Fault) -> None:
        with self._lock:
            self._state.by_model[model] = fault

    def set_usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None,
                  cache_read: int = 0, cache_creation: int = 0, cache_creation_1h: int = 0,
                  thinking_tokens: int | None = None) -> None:
        figures = {"cache_read": cache_read, "cache_creation": cache_creation,
                   "cache_creation_1h": cache_creation_1h}
        if input_tokens is not None:
            figures["input_tokens"] = input_tokens
        if output_tokens is not None:
            figures["output_tokens"] = output_tokens
        if thinking_tokens is not None:
            figures["thinking_tokens"] = thinking_tokens
        with self._lock:
            self._state.usage = figures

    def reply_with_tool_use(self, name: str, arguments: dict[str, Any], *,
                            thinking: bool = False) -> None:
        with self._lock:
            self._state.tool_use = (name, arguments)
            self._state.thinking = thinking

    def set_count(self, tokens: int) -> None:
        with self._lock:
            self._state.count = tokens

    def require_key(self, key: str | None) -> None:
        with self._lock:
            self._state.expected_key = key

    # --- server -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)

    # --- verification -----------------------------------------------------------------------

    @staticmethod
    def _check_blocks(content: Any, where: str, role: str,
                      tool_ids: set[str]) -> set[str]:
        """Validate one turn's content; return the tool_use ids it declares."""
        if isinstance(content, str):
            if role == "user" and tool_ids:
                raise _Invalid(f"{where}: tool_use ids were found without tool_result blocks "
                               "immediately after")
            return set()
        if not isinstance(content, list) or not content:
            raise _Invalid(f"{where}: must be a string or a non-empty list of blocks")
        declared: set[str] = set()
        answered: set[str] = set()
        seen_other = False
        for i, block in enumerate(content):
            at = f"{where}.{i}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in _BLOCKS:
                raise _Invalid(f"{at}.type: unknown content block type {kind!r}")
            if kind == "text" and not isinstance(block.get("text"), str):
                raise _Invalid(f"{at}.text: Field required")
            if kind in ("image", "document"):
                source = block.get("source") or {}
                if source.get("type") == "base64":
                    if not source.get("media_type") or not isinstance(source.get("data"), str):
                        raise _Invalid(f"{at}.source: media_type and data are required")
                elif source.get("type") not in ("url", "text"):
                    raise _Invalid(f"{at}.source.type: unsupported source")
            if kind == "tool_use":
                if role != "assistant":
                    raise _Invalid(f"{at}: tool_use blocks belong to assistant turns")
                if not block.get("id") or not block.get("name") or not isinstance(
                        block.get("input"), dict):
                    raise _Invalid(f"{at}: tool_use needs id, name and an input object")
                declared.add(block["id"])
            if kind == "tool_result":
                if role != "user" or seen_other:
                    raise _Invalid(f"{at}: tool_result blocks must come first in a user turn")
                if block.get("tool_use_id") not in tool_ids:
                    raise _Invalid(f"{at}.tool_use_id: no matching tool_use block in the "
                                   "previous assistant turn")
                answered.add(block["tool_use_id"])
            else:
                seen_other = True
        if role == "user" and tool_ids and answered != tool_ids:
            raise _Invalid(f"{where}: every tool_use needs a tool_result in the next turn")
        return declared

    def _check_body(self, body: Any, count: bool) -> None:
        if not isinstance(body, dict):
            raise _Invalid("the body must be a JSON object")
        allowed = _COUNT_TOP_LEVEL if count else _TOP_LEVEL
        extra = sorted(set(body) - allowed)
        if extra:
            raise _Invalid(f"{extra[0]}: Extra inputs are not permitted")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _Invalid("model: Field required")
        if not count:
            max_tokens = body.get("max_tokens")
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
                raise _Invalid("max_tokens: Field required")
            temperature = body.get("temperature")
            if temperature is not None and not 0 <= temperature <= 1:
                raise _Invalid("temperature: Input should be less than or equal to 1")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid("messages: Field required")
        previous = None
        tool_ids: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                raise _Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if role == previous:
                raise _Invalid(f"messages.{i}: roles must alternate between user and assistant")
            declared = self._check_blocks(message.get("content"), f"messages.{i}.content",
                                          role, tool_ids if role == "user" else set())
            tool_ids = declared if role == "assistant" else set()
            previous = role
        system = body.get("system")
        if system is not None and not isinstance(system, str) and not (
                isinstance(system, list)
                and all(isinstance(b, dict) and b.get("type") == "text" for b in system)):
            raise _Invalid("system: must be a string or a list of text blocks")
        for i, tool in enumerate(body.get("tools") or ()):
            if not isinstance(tool, dict) or not tool.get("name") or not isinstance(
                    tool.get("input_schema"), dict):
                raise _Invalid(f"tools.{i}: name and input_schema are required")
        choice = body.get("tool_choice")
        if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in (
                "auto", "any", "tool", "none")):
            raise _Invalid("tool_choice.type: must be 'auto', 'any', 'tool' or 'none'")

    # --- request handling -------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> tuple[Any, Fault | None, _State]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = RecordedRequest(request.method, request.path,
                                 {k.lower(): v for k, v in request.headers.items()}, body)
        with self._lock:
            state = self._state
            state.requests.append(record)
            fault = state.script.popleft() if state.script else \
                state.by_model.get(record.model or "")
        return body, fault, state

    @staticmethod
    def _error(status: int, message: str, headers: dict[str, str] | None = None
               ) -> web.Response:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else
                                "invalid_request_error")
        body = {"type": "error", "error": {"type": kind, "message": message},
                "request_id": "req_fake"}
        return web.Response(status=status, body=json.dumps(body).encode(),
                            content_type="application/json", headers=headers)

    async def _before_reply(self, request: web.Request, body: Any, fault: Fault | None,
                            state: _State, count: bool) -> web.StreamResponse | None:
        expected = state.expected_key
        if expected is not None and expected not in (
                request.headers.get("x-api-key"),
                request.headers.get("authorization", "").removeprefix("Bearer ")):
            return self._error(401, "invalid x-api-key")
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                await hang_up(request)
            if fault.status is not None:
                headers = {"retry-after": fault.retry_after} if fault.retry_after else None
                default = "Overloaded" if fault.status == 529 else \
                    f"The fake upstream answered HTTP {fault.status}."
                return self._error(fault.status, fault.message or default, headers)
        problem = None
        if request.headers.get("anthropic-version") not in _KNOWN_VERSIONS:
            problem = "anthropic-version: header is required"
        elif not request.content_type == "application/json":
            problem = "content-type must be application/json"
        else:
            try:
                self._check_body(body, count)
            except _Invalid as exc:
                problem = str(exc)
        if problem is not None:
            with self._lock:
                state.rejections.append(problem)
            return self._error(400, problem)
        return None

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}_fake{self._counter:06d}"

    def _answer(self, body: dict[str, Any], state: _State) -> tuple[list[dict[str, Any]], str]:
        last = body["messages"][-1]
        text = f"Echo: {_text_of(last.get('content'))}" if last["role"] == "user" else "Echo:"
        has_results = isinstance(last.get("content"), list) and any(
            b.get("type") == "tool_result" for b in last["content"])
        blocks: list[dict[str, Any]] = []
        if state.thinking:
            blocks.append({"type": "thinking", "thinking": "Let me think.",
                           "signature": "sig-fake"})
        if state.tool_use is not None and body.get("tools") and not has_results:
            name, arguments = state.tool_use
            blocks.append({"type": "text", "text": "Let me check."})
            blocks.append({"type": "tool_use", "id": self._next_id("toolu"), "name": name,
                           "input": arguments})
            return blocks, "tool_use"
        blocks.append({"type": "text", "text": text})
        return blocks, "end_turn"

    def _usage(self, body: dict[str, Any], state: _State,
               blocks: list[dict[str, Any]]) -> dict[str, Any]:
        figures = state.usage
        prompt = sum(_words(_text_of(m.get("content"))) for m in body["messages"])
        reply = sum(_words(b.get("text", "")) for b in blocks) + sum(
            len(b.get("input", {})) for b in blocks if b["type"] == "tool_use")
        writes = figures.get("cache_creation", 0)
        writes_1h = figures.get("cache_creation_1h", 0)
        usage: dict[str, Any] = {
            "input_tokens": figures.get("input_tokens", prompt),
            "cache_creation_input_tokens": writes,
            "cache_read_input_tokens": figures.get("cache_read", 0),
            "cache_creation": {"ephemeral_5m_input_tokens": writes - writes_1h,
                               "ephemeral_1h_input_tokens": writes_1h},
            "output_tokens": figures.get("output_tokens", reply),
            "service_tier": "standard",
        }
        if "thinking_tokens" in figures:
            usage["output_tokens_details"] = {"thinking_tokens": figures["thinking_tokens"]}
        return usage

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, fault, state = await self._receive(request)
        early = await self._before_reply(request, body, fault, state, count=False)
        if early is not None:
            return early
        blocks, stop_reason = self._answer(body, state)
        usage = self._usage(body, state, blocks)
        message = {"id": self._next_id("msg"), "type": "message", "role": "assistant",
                   "model": body["model"], "content": blocks, "stop_reason": stop_reason,
                   "stop_sequence": None, "usage": usage}
        if body.get("stream"):
            return await self._stream(request, fault or Fault(), message)
        return web.Response(body=json.dumps(message).encode(), content_type="application/json")

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, fault, state = await self._receive(request)
        early = await self._before_reply(request, body, fault, state, count=True)
        if early is not None:
            return early
        tokens = state.count
        if tokens is None:
            tokens = sum(_words(_text_of(m.get("content"))) for m in body["messages"])
        return web.Response(body=json.dumps({"input_tokens": tokens}).encode(),
                            content_type="application/json")

    @staticmethod
    def _events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        usage = message["usage"]
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens_details"}
        start_usage["output_tokens"] = 1  # Anthropic's placeholder
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {
            "type": "message_start",
            "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}})]
        for index, block in enumerate(message["content"]):
            kind = block["type"]
            if kind == "text":
                start, deltas = {"type": "text", "text": ""}, [
                    {"type": "text_delta", "text": w if i == 0 else " " + w}
                    for i, w in enumerate(block["text"].split(" "))]
            elif kind == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [{"type": "thinking_delta", "thinking": block["thinking"]},
                          {"type": "signature_delta", "signature": block["signature"]}]
            else:
                start = {**block, "input": {}}
                encoded = json.dumps(block["input"])
                half = len(encoded) // 2
                deltas = [{"type": "input_json_delta", "partial_json": ""},
                          {"type": "input_json_delta", "partial_json": encoded[:half]},
                          {"type": "input_json_delta", "partial_json": encoded[half:]}]
            events.append(("content_block_start", {"type": "content_block_start",
                                                   "index": index, "content_block": start}))
            if index == 0:
                events.append(("ping", {"type": "ping"}))
            events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                                "delta": d}) for d in deltas]
            events.append(("content_block_stop", {"type": "content_block_stop",
                                                  "index": index}))
        final = {"output_tokens": usage["output_tokens"]}
        if "output_tokens_details" in usage:
            final["output_tokens_details"] = usage["output_tokens_details"]
        events.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": final}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    async def _stream(self, request: web.Request, fault: Fault,
                      message: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={
            "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        events = self._events(message)
        if fault.omit_stop:
            events = events[:-1]
        for sent, (name, data) in enumerate(events):
            if fault.break_after is not None and sent >= fault.break_after:
                await hang_up(request)
            if fault.error_after is not None and sent >= fault.error_after:
                error = {"type": "error", "error": {"type": "overloaded_error",
                                                    "message": "Overloaded"}}
                await response.write(b"event: error\ndata: " + json.dumps(error).encode()
                                     + b"\n\n")
                break
            await response.write(f"event: {name}\ndata: ".encode() + json.dumps(data).encode()
                                 + b"\n\n")
        await response.write_eof()
        return response


def running_fake_anthropic() -> AbstractContextManager[FakeAnthropic]:
    """Start a fake on a free loopback port; stop it on exit."""
    return serving(FakeAnthropic())
