"""OpenAI inbound → Anthropic wire: chat completions served by the Messages API.

Request: system/developer messages become the top-level `system`; `tool` messages become
`tool_result` blocks in a user turn (consecutive turns of one role are merged, as Anthropic
expects alternating roles); assistant `tool_calls` become `tool_use` blocks; `image_url` parts
become base64 (data: URLs) or url image sources; PDF `file` parts become documents.
`max_tokens` is required by Anthropic: the request's own cap, else the catalog's output limit
for the model, else 4096. `temperature` is clamped to Anthropic's 0–1; `stop` becomes
`stop_sequences`; tools and `tool_choice` (auto / none / required → any / a named function →
tool) are mapped, `parallel_tool_calls: false` → `disable_parallel_tool_use`.
Dropped because Anthropic has no equivalent: frequency/presence penalties, logit_bias,
logprobs, seed, response_format, reasoning_effort, service_tier, store, metadata.
Refused (400) because the meaning would change: n > 1, audio input, OpenAI file ids,
non-function tools, legacy `function` messages.

Response and stream: text blocks → content, tool_use → tool_calls (with streamed argument
deltas), thinking blocks are dropped (their tokens are still billed as output), stop reasons
end_turn/stop_sequence/pause_turn → stop, max_tokens/model_context_window_exceeded → length,
tool_use → tool_calls, refusal → content_filter. Usage is rendered from the adapter's figure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from tollgate.gateway.errors import InvalidRequest, UpstreamServerError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply, WireRequest
from tollgate.gateway.translate.shapes.openai import DONE, chunk, usage_json
from tollgate.gateway.translate.sse import Event

__all__ = ["DEFAULT_MAX_TOKENS", "FINISH_REASONS", "OpenAIToAnthropic"]

DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_TOOL_CHOICE = {"auto": {"type": "auto"}, "none": {"type": "none"},
                "required": {"type": "any"}}


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_for_provider")


def _text_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    text = part.get("text")
    if not isinstance(text, str):
        raise _invalid(f"`{where}.text` must be a string", where)
    block: dict[str, Any] = {"type": "text", "text": text}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _data_url(url: str, where: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` → (media type, data)."""
    head, comma, data = url.partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        raise _invalid(f"`{where}` must be an http(s) URL or a base64 data: URL", where)
    return head[5:-7], data


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _invalid(f"`{where}.image_url.url` must be a string", where)
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url, f"{where}.image_url.url")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                        "data": data}}


def _file(part: dict[str, Any], where: str) -> dict[str, Any]:
    file = part.get("file")
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str):
        raise _invalid(f"`{where}`: only inline `file_data` (a base64 PDF) can be sent to this "
                       "provider; OpenAI file ids cannot", where)
    media_type, data = _data_url(data_url, f"{where}.file.file_data")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type,
                                           "data": data}}


_USER_PARTS = {"text": _text_part, "image_url": _image, "file": _file}


def _parts(content: Any, where: str, allowed: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(f"`{where}` must be a string or an array of content parts", where)
    blocks = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        convert = allowed.get(kind) if isinstance(kind, str) else None
        if convert is None:
            raise _invalid(f"`{where}[{i}]`: content part type {kind!r} cannot be sent to this "
                           "provider", f"{where}[{i}]")
        blocks.append(convert(part, f"{where}[{i}]"))
    return blocks


def _refusal_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    return {"type": "text", "text": str(part.get("refusal") or "")}


_ASSISTANT_PARTS = {"text": _text_part, "refusal": _refusal_part}
_TEXT_ONLY = {"text": _text_part}


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _invalid(f"`{where}` must be a function tool call with a name", where)
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise _invalid(f"`{where}.function.arguments` must be a JSON object", where)
    return {"type": "tool_use", "id": str(call.get("id") or ""), "name": function["name"],
            "input": parsed}


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]] | str) -> None:
    """Add a turn, merging it into the previous one when the role repeats."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        previous = messages[-1]["content"]
        if isinstance(previous, str):
            previous = [{"type": "text", "text": previous}]
        added = [{"type": "text", "text": blocks}] if isinstance(blocks, str) else blocks
        messages[-1]["content"] = previous + added
        return
    messages.append({"role": role, "content": blocks})


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _invalid("`tools` must be an array", "tools")
    converted = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise _invalid(f"`tools[{i}]`: only function tools can be sent to this provider",
                           f"tools[{i}]")
        entry: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            entry["description"] = function["description"]
        entry["input_schema"] = function.get("parameters") or {"type": "object",
                                                               "properties": {}}
        converted.append(entry)
    return converted


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _TOOL_CHOICE:
        return dict(_TOOL_CHOICE[choice])
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise _invalid("`tool_choice` must be 'auto', 'none', 'required' or a named function",
                   "tool_choice")


class OpenAIToAnthropic:
    inbound = "openai"
    wire = "anthropic"
    __slots__ = ("_context", "_created", "_id", "_model", "_tool_of")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._created = int(time.time())
        self._id = ""
        self._model = context.model
        self._tool_of: dict[int, int] = {}  # Anthropic block index → OpenAI tool-call index

    # --- request ------------------------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> WireRequest:
        if body.get("n") not in (None, 1):
            raise _invalid("this provider returns one choice per request; `n` must be 1", "n")
        system: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for i, message in enumerate(body.get("messages") or ()):
            where = f"messages[{i}]"
            role = message.get("role")
            content = message.get("content")
            if role in ("system", "developer"):
                system += _parts(content, f"{where}.content", _TEXT_ONLY)
            elif role == "user":
                _append(messages, "user", content if isinstance(content, str) and content
                        else _parts(content, f"{where}.content", _USER_PARTS))
            elif role == "assistant":
                blocks = [] if content is None else _parts(
                    content, f"{where}.content", _ASSISTANT_PARTS)
                blocks += [_tool_use(call, f"{where}.tool_calls[{j}]")
                           for j, call in enumerate(message.get("tool_calls") or ())]
                _append(messages, "assistant", blocks)
            elif role == "tool":
                result: dict[str, Any] = {
                    "type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or ""),
                    "content": content if isinstance(content, str)
                    else _parts(content, f"{where}.content", _TEXT_ONLY),
                }
                _append(messages, "user", [result])
            else:
                raise _invalid(f"`{where}.role` {role!r} cannot be sent to this provider",
                               f"{where}.role")
        wire: dict[str, Any] = {"max_tokens": self._max_tokens(body), "messages": messages}
        if system:
            plain = len(system) == 1 and "cache_control" not in system[0]
            wire["system"] = system[0]["text"] if plain else system
        self._sampling(body, wire)
        tools = body.get("tools")
        if tools:
            wire["tools"] = _tools(tools)
            choice = _tool_choice(body.get("tool_choice") or "auto")
            if body.get("parallel_tool_calls") is False and choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
            if choice != {"type": "auto"}:
                wire["tool_choice"] = choice
        user = body.get("user")
        if isinstance(user, str) and user:
            wire["metadata"] = {"user_id": user}
        if self._context.stream:
            wire["stream"] = True
        return WireRequest(wire)

    def _max_tokens(self, body: dict[str, Any]) -> int:
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        if requested is None:
            return self._context.max_output_tokens or DEFAULT_MAX_TOKENS
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise _invalid("`max_completion_tokens` must be a positive integer",
                           "max_completion_tokens")
        return requested

    @staticmethod
    def _sampling(body: dict[str, Any], wire: dict[str, Any]) -> None:
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            wire["temperature"] = min(max(temperature, 0), 1)
        top_p = body.get("top_p")
        if isinstance(top_p, int | float) and not isinstance(top_p, bool):
            wire["top_p"] = top_p
        stop = body.get("stop")
        if isinstance(stop, str) and stop:
            wire["stop_sequences"] = [stop]
        elif isinstance(stop, list) and stop:
            wire["stop_sequences"] = [s for s in stop if isinstance(s, str)]

    # --- response -----------------------------------------------------------------------------

    def response(self, reply: Reply) -> bytes:
        data = reply.data if reply.data is not None else _loads(reply.body)
        try:
            texts: list[str] = []
            calls: list[dict[str, Any]] = []
            for block in data["content"]:
                kind = block.get("type")
                if kind == "text":
                    texts.append(block["text"])
                elif kind == "tool_use":
                    calls.append({"id": block["id"], "type": "function", "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block.get("input") or {}).decode()}})
            message: dict[str, Any] = {"role": "assistant",
                                       "content": "".join(texts) if texts else None,
                                       "refusal": None}
            if calls:
                message["tool_calls"] = calls
            completion = {
                "id": data["id"], "object": "chat.completion", "created": self._created,
                "model": data.get("model") or self._model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": FINISH_REASONS.get(data.get("stop_reason"),
                                                                 "stop")}],
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise UpstreamServerError("the provider sent a malformed message") from exc
        if reply.usage is not None:
            completion["usage"] = usage_json(reply.usage)
        return orjson.dumps(completion)

    # --- stream -------------------------------------------------------------------------------

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        try:
            return self._feed(event, usage)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamServerError("the provider sent a malformed stream event") from exc

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Event:
        return chunk(self._id, self._created, self._model, delta, finish)

    def _feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        name = event.name
        if name == "content_block_delta":
            body = event.json()
            delta = body["delta"]
            kind = delta.get("type")
            if kind == "text_delta":
                return (self._chunk({"content": delta["text"]}),)
            if kind == "input_json_delta" and delta.get("partial_json"):
                tool = self._tool_of.get(body["index"])
                if tool is not None:
                    return (self._chunk({"tool_calls": [{
                        "index": tool, "function": {"arguments": delta["partial_json"]}}]}),)
            return ()  # thinking, signatures, citations: nothing in OpenAI's shape
        if name == "message_start":
            message = event.json()["message"]
            self._id = message["id"]
            self._model = message.get("model") or self._model
            return (self._chunk({"role": "assistant", "content": ""}),)
        if name == "content_block_start":
            body = event.json()
            block = body["content_block"]
            if block.get("type") == "tool_use":
                tool = len(self._tool_of)
                self._tool_of[body["index"]] = tool
                return (self._chunk({"tool_calls": [{
                    "index": tool, "id": block["id"], "type": "function",
                    "function": {"name": block["name"], "arguments": ""}}]}),)
            if block.get("type") == "text" and block.get("text"):
                return (self._chunk({"content": block["text"]}),)
            return ()
        if name == "message_delta":
            stop_reason = event.json()["delta"].get("stop_reason")
            return (self._chunk({}, FINISH_REASONS.get(stop_reason, "stop")),)
        if name == "message_stop":
            if self._context.include_usage and usage is not None:
                return (Event.of(None, {
                    "id": self._id, "object": "chat.completion.chunk",
                    "created": self._created, "model": self._model, "choices": [],
                    "usage": usage_json(usage)}), DONE)
            return (DONE,)
        return ()  # ping, content_block_stop, and events this version does not know


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamServerError("the provider sent a malformed message") from exc
