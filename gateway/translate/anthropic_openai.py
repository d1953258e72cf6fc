"""Anthropic inbound → OpenAI wire: Messages API requests served by chat completions.

Request: the top-level `system` becomes a leading system message; `tool_result` blocks become
`tool` messages (placed before the rest of their user turn, in order; images inside a tool
result follow in a user message, as OpenAI tool messages carry text only); `tool_use` blocks
become assistant `tool_calls`; base64/url image sources become `image_url` parts; base64 PDF
documents become `file` parts, plain-text documents text. `max_tokens` →
`max_completion_tokens`, `stop_sequences` → `stop`, tools and `tool_choice` (auto / any →
required / tool → a named function / none), `disable_parallel_tool_use` →
`parallel_tool_calls: false`, `metadata.user_id` → `user`. Dropped because OpenAI has no
equivalent: `top_k`, `thinking`, `cache_control`, `service_tier`, a tool result's `is_error`.
Refused (400): server tools (web search, code execution …) and block types OpenAI cannot carry.

Response and stream: content → a text block, tool_calls → tool_use blocks (streamed as
`input_json_delta`), finish reasons stop → end_turn, length → max_tokens, tool_calls →
tool_use, content_filter → refusal. OpenAI reports usage only at the end of a stream, so
`message_start` carries zeros and the closing `message_delta` the whole (cumulative) usage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from tollgate.gateway.errors import UpstreamServerError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply, WireRequest
from tollgate.gateway.translate.shapes.anthropic import (
    block_delta,
    block_start,
    block_stop,
    custom_tools,
    input_schema,
    message_delta,
    message_start,
    message_stop,
    unsupported,
    usage_json,
)
from tollgate.gateway.translate.sse import Event

__all__ = ["AnthropicToOpenAI", "STOP_REASONS"]

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
_NO_USAGE = {"input_tokens": 0, "output_tokens": 0}


def _text_of(blocks: Any, where: str) -> str:
    """The text of a string or of a list of text blocks (system prompts, tool results)."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise unsupported(f"`{where}` must be a string or an array of text blocks", where)
    texts = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise unsupported(f"`{where}[{i}]` must be a text block", f"{where}[{i}]")
        texts.append(str(block.get("text", "")))
    return "\n\n".join(texts)


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url":
        url = source.get("url")
    else:
        raise unsupported(f"`{where}.source`: image source {kind!r} cannot be sent to this "
                       "provider", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        return {"type": "file", "file": {
            "filename": block.get("title") or "document.pdf",
            "file_data": f"data:{media_type};base64,{source.get('data')}"}}
    if kind == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    raise unsupported(f"`{where}.source`: document source {kind!r} cannot be sent to this "
                   "provider", where)


def _text(block: dict[str, Any], where: str) -> dict[str, Any]:
    return {"type": "text", "text": str(block.get("text", ""))}


_USER_BLOCKS = {"text": _text, "image": _image, "document": _document}


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[Any]]:
    """A `tool` message, and the images of the result (OpenAI tool messages are text-only)."""
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind == "image":
                images.append(_image(part, f"{where}.content[{i}]"))
            else:
                raise unsupported(f"`{where}.content[{i}]`: {kind!r} cannot be sent in a tool "
                               "result to this provider", f"{where}.content[{i}]")
        text = "\n\n".join(texts)
    else:
        text = "" if content is None else str(content)
    message = {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
               "content": text}
    return message, images


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise unsupported(f"`{where}` must be a string or an array of content blocks", where)
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        at = f"{where}[{i}]"
        if kind == "tool_result":
            message, images = _tool_result(block, at)
            tools.append(message)
            parts += images
            continue
        convert = _USER_BLOCKS.get(kind) if isinstance(kind, str) else None
        if convert is None:
            raise unsupported(f"`{at}`: content block type {kind!r} cannot be sent to this "
                           "provider", at)
        parts.append(convert(block, at))
    return tools + ([{"role": "user", "content": parts}] if parts else [])


def _assistant_message(content: Any, where: str) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    if not isinstance(content, list):
        raise unsupported(f"`{where}` must be a string or an array of content blocks", where)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append({"id": str(block.get("id", "")), "type": "function", "function": {
                "name": str(block.get("name", "")),
                "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind not in ("thinking", "redacted_thinking"):
            raise unsupported(f"`{where}[{i}]`: content block type {kind!r} cannot be sent to "
                           "this provider", f"{where}[{i}]")
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(tools: Any) -> list[dict[str, Any]]:
    converted = []
    for tool in custom_tools(tools):
        function: dict[str, Any] = {"name": tool.get("name")}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = input_schema(tool)
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any) -> tuple[Any, bool]:
    """(OpenAI tool_choice, parallel tool calls allowed)."""
    kind = choice.get("type") if isinstance(choice, dict) else None
    parallel = not (isinstance(choice, dict) and choice.get("disable_parallel_tool_use"))
    if kind in _TOOL_CHOICE:
        return _TOOL_CHOICE[kind], parallel
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise unsupported("`tool_choice.type` must be 'auto', 'any', 'tool' or 'none'", "tool_choice")


def _arguments(text: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise UpstreamServerError("the provider sent tool-call arguments that are not a JSON "
                                  "object")
    return value


def _message_id(ident: Any, fallback: str) -> str:
    text = ident if isinstance(ident, str) and ident else fallback
    return text if text.startswith("msg_") else f"msg_{text}"


class AnthropicToOpenAI:
    inbound = "anthropic"
    wire = "openai"
    __slots__ = ("_blocks", "_context", "_id", "_model", "_open", "_started", "_stop",
                 "_tool_block")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._id = _message_id(None, context.request_id)
        self._model = context.model
        self._started = False
        self._blocks = 0  # content blocks started so far
        self._open: int | None = None  # index of the open block
        self._tool_block: dict[int, int] = {}  # OpenAI tool-call index → block index
        self._stop = "end_turn"

    # --- request ------------------------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> WireRequest:
        messages: list[dict[str, Any]] = []
        system = body.get("system")
        if system:
            messages.append({"role": "system", "content": _text_of(system, "system")})
        for i, message in enumerate(body.get("messages") or ()):
            where = f"messages[{i}].content"
            role = message.get("role")
            if role == "user":
                messages += _user_messages(message.get("content"), where)
            elif role == "assistant":
                turn = _assistant_message(message.get("content"), where)
                if turn is not None:
                    messages.append(turn)
            else:
                raise unsupported(f"`messages[{i}].role` must be 'user' or 'assistant'",
                               f"messages[{i}].role")
        wire: dict[str, Any] = {"messages": messages,
                                "max_completion_tokens": body.get("max_tokens")}
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                wire[name] = body[name]
        stop = body.get("stop_sequences")
        if stop:
            wire["stop"] = stop
        tools = body.get("tools")
        if tools:
            wire["tools"] = _tools(tools)
            if body.get("tool_choice") is not None:
                choice, parallel = _tool_choice(body["tool_choice"])
                if choice != "auto":
                    wire["tool_choice"] = choice
                if not parallel:
                    wire["parallel_tool_calls"] = False
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
            wire["user"] = metadata["user_id"]
        if self._context.stream:
            wire["stream"] = True
        return WireRequest(wire)

    # --- response -----------------------------------------------------------------------------

    def response(self, reply: Reply) -> bytes:
        try:
            data = reply.data if reply.data is not None else orjson.loads(reply.body)
            choice = data["choices"][0]
            message = choice["message"]
            content: list[dict[str, Any]] = []
            text = message.get("content") or message.get("refusal")
            if text:
                content.append({"type": "text", "text": text})
            for call in message.get("tool_calls") or ():
                function = call["function"]
                content.append({"type": "tool_use", "id": call["id"],
                                "name": function["name"],
                                "input": _arguments(function.get("arguments"))})
            body = {
                "id": _message_id(data.get("id"), self._context.request_id),
                "type": "message", "role": "assistant",
                "model": data.get("model") or self._model, "content": content,
                "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"),
                "stop_sequence": None,
                "usage": usage_json(reply.usage) if reply.usage is not None else _NO_USAGE,
            }
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamServerError("the provider sent a malformed completion") from exc
        return orjson.dumps(body)

    # --- stream -------------------------------------------------------------------------------

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        try:
            if event.data == b"[DONE]":
                return self._finish(usage)
            return self._feed(event.json())
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamServerError("the provider sent a malformed stream event") from exc

    def _start(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(message_start(self._id, self._model, dict(_NO_USAGE)))

    def _close(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(block_stop(self._open))
            self._open = None

    def _open_block(self, out: list[Event], block: dict[str, Any]) -> int:
        self._close(out)
        index = self._blocks
        self._blocks += 1
        self._open = index
        out.append(block_start(index, block))
        return index

    def _feed(self, chunk: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._id = _message_id(chunk.get("id"), self._context.request_id)
            self._model = chunk.get("model") or self._model
        choices = chunk.get("choices")
        if not choices:
            if chunk.get("error") is not None:
                raise UpstreamServerError("the provider reported an error mid-stream")
            return out  # the usage chunk: the adapter has read it
        self._start(out)
        choice = choices[0]
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if text:
            if self._open is None or self._open in self._tool_block.values():
                self._open_block(out, {"type": "text", "text": ""})
            assert self._open is not None
            out.append(block_delta(self._open, {"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or ():
            position = call.get("index", 0)
            function = call.get("function") or {}
            index = self._tool_block.get(position)
            if index is None:
                index = self._open_block(out, {
                    "type": "tool_use", "id": call.get("id") or f"toolu_{position}",
                    "name": function.get("name") or "", "input": {}})
                self._tool_block[position] = index
            if function.get("arguments"):
                out.append(block_delta(index, {"type": "input_json_delta",
                                               "partial_json": function["arguments"]}))
        finish = choice.get("finish_reason")
        if finish:
            self._stop = STOP_REASONS.get(finish, "end_turn")
            self._close(out)
        return out

    def _finish(self, usage: Usage | None) -> list[Event]:
        out: list[Event] = []
        self._start(out)
        self._close(out)
        figures = usage_json(usage) if usage is not None else dict(_NO_USAGE)
        figures.pop("cache_creation", None)  # message_delta carries the totals only
        out.append(message_delta(self._stop, figures))
        out.append(message_stop())
        return out
