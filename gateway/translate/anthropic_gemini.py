"""Anthropic inbound → Gemini wire: messages served by `generateContent` (Vertex AI).

It is also the hub for OpenAI requests (openai_gemini.py makes them Anthropic-shaped first).

Request: `system` → `systemInstruction.parts`; roles user/assistant → `user`/`model`; text →
`{text}`; base64 images and documents → `{inlineData: {mimeType, data}}`, URL images →
`{fileData: {mimeType, fileUri}}` (mime type from the file name, else image/jpeg); `tool_use`
→ `{functionCall: {name, args}}`; `tool_result` → `{functionResponse: {name, response:
{content}}}` (`{error}` when `is_error`) — Gemini matches results by function *name*, found
from the tool_use with that id earlier in the conversation — plus any images of the result as
extra parts; thinking blocks are dropped (Gemini's thought signatures are its own).
`max_tokens`, `temperature`, `top_p`, `top_k`, `stop_sequences` → `generationConfig`
(`maxOutputTokens`, `temperature`, `topP`, `topK`, `stopSequences`); `thinking.budget_tokens`
→ `generationConfig.thinkingConfig.thinkingBudget`. Tools → one `tools[0].functionDeclarations`
list with the JSON Schema as `parametersJsonSchema` (passed whole, not down-converted to
Gemini's OpenAPI subset); `tool_choice` auto / any / tool / none → `toolConfig.
functionCallingConfig.mode` AUTO / ANY / ANY + `allowedFunctionNames` / NONE.
Refused (400): server tools, URL documents. Dropped: `metadata`, cache_control markers,
`disable_parallel_tool_use`.

Response and stream: text parts → text blocks (thought parts are dropped); `functionCall` →
tool_use, with the call's own `id` when Gemini sends one, else `toolu_<request id>_<n>`.
finishReason STOP → end_turn (tool_use when the answer calls a function), MAX_TOKENS →
max_tokens, the safety family (SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII,
IMAGE_SAFETY…) → refusal, anything else → end_turn; a prompt blocked outright (no candidates,
`promptFeedback.blockReason`) is an empty refusal. Gemini streams whole parts: text arrives as
text deltas, a function call as one block (start, its arguments in one input_json_delta, stop).
Usage: the adapter's figure (running totals, the last chunk's), written on the final event.
"""

from __future__ import annotations

import mimetypes
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
from tollgate.gateway.translate.shapes.gemini import END
from tollgate.gateway.translate.sse import Event

__all__ = ["FINISH_REASONS", "AnthropicToGemini", "GeminiEvents", "gemini_request",
           "loads_reply", "message_from_gemini"]

FINISH_REASONS = {
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "IMAGE_SAFETY": "refusal",
    "IMAGE_PROHIBITED_CONTENT": "refusal",
    "LANGUAGE": "refusal",
}
"""Gemini finishReason → Anthropic stop_reason (anything else: end_turn)."""

_MODES = {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}
_ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0}


def _media(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        return {"inlineData": {"mimeType": str(source.get("media_type") or ""),
                               "data": source.get("data")}}
    if kind == "text":
        return {"text": str(source.get("data", ""))}
    if kind == "url" and block.get("type") == "image":
        url = str(source.get("url") or "")
        guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
        return {"fileData": {"mimeType": guessed or "image/jpeg", "fileUri": url}}
    raise unsupported(f"`{where}.source`: {kind!r} sources cannot be sent to Gemini", where)


def _tool_names(messages: Any) -> dict[str, str]:
    """tool_use id → function name, over the whole conversation."""
    names: dict[str, str] = {}
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_use":
                names[str(block.get("id", ""))] = str(block.get("name", ""))
    return names


def _tool_result(block: dict[str, Any], where: str,
                 names: dict[str, str]) -> list[dict[str, Any]]:
    tool_id = str(block.get("tool_use_id", ""))
    name = names.get(tool_id)
    if name is None:
        raise unsupported(f"`{where}.tool_use_id` {tool_id!r} answers no tool_use block of this "
                       "conversation (Gemini matches tool results by function name)", where)
    content = block.get("content")
    texts: list[str] = []
    extra: list[dict[str, Any]] = []
    if isinstance(content, list):
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind in ("image", "document"):
                extra.append(_media(part, f"{where}.content[{i}]"))
            else:
                raise unsupported(f"`{where}.content[{i}]`: {kind!r} cannot be sent in a tool "
                               "result to Gemini", f"{where}.content[{i}]")
    elif content is not None:
        texts.append(str(content))
    key = "error" if block.get("is_error") else "content"
    response = {"name": name, "response": {key: "\n\n".join(texts)}}
    return [{"functionResponse": response}, *extra]


def _parts(content: Any, where: str, role: str, names: dict[str, str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise unsupported(f"`{where}` must be a string or an array of content blocks", where)
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if block.get("text"):
                parts.append({"text": str(block["text"])})
        elif kind in ("image", "document"):
            parts.append(_media(block, at))
        elif kind == "tool_use" and role == "assistant":
            parts.append({"functionCall": {"name": str(block.get("name", "")),
                                           "args": block.get("input") or {}}})
        elif kind == "tool_result" and role == "user":
            parts += _tool_result(block, at, names)
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue
        else:
            raise unsupported(f"`{at}`: content block type {kind!r} cannot be sent to Gemini", at)
    return parts


def _system(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"text": system}] if system else []
    if not isinstance(system, list):
        raise unsupported("`system` must be a string or an array of text blocks", "system")
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise unsupported(f"`system[{i}]` must be a text block", f"system[{i}]")
        if block.get("text"):
            parts.append({"text": str(block["text"])})
    return parts


def _declarations(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for tool in custom_tools(tools):
        declaration: dict[str, Any] = {"name": tool.get("name")}
        if tool.get("description"):
            declaration["description"] = tool["description"]
        declaration["parametersJsonSchema"] = input_schema(tool)
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any) -> dict[str, Any] | None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    mode = _MODES.get(kind) if isinstance(kind, str) else None
    if mode is None or (kind == "tool" and not isinstance(choice.get("name"), str)):
        raise unsupported("`tool_choice.type` must be 'auto', 'any', 'tool' or 'none'",
                       "tool_choice")
    if mode == "AUTO":
        return None
    config: dict[str, Any] = {"mode": mode}
    if kind == "tool":
        config["allowedFunctionNames"] = [choice["name"]]
    return {"functionCallingConfig": config}


def gemini_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages body → a generateContent body (the model goes in the URL)."""
    messages = body.get("messages") or ()
    names = _tool_names(messages)
    contents: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise unsupported(f"`messages[{i}].role` must be 'user' or 'assistant'",
                           f"messages[{i}].role")
        parts = _parts(message.get("content"), f"messages[{i}].content", role, names)
        if not parts:
            continue
        wire_role = "user" if role == "user" else "model"
        if contents and contents[-1]["role"] == wire_role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": wire_role, "parts": parts})
    wire: dict[str, Any] = {"contents": contents}
    system = _system(body.get("system")) if body.get("system") else []
    if system:
        wire["systemInstruction"] = {"parts": system}
    generation: dict[str, Any] = {}
    for source, target in (("max_tokens", "maxOutputTokens"), ("temperature", "temperature"),
                           ("top_p", "topP"), ("top_k", "topK")):
        if body.get(source) is not None:
            generation[target] = body[source]
    if body.get("stop_sequences"):
        generation["stopSequences"] = list(body["stop_sequences"])
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled" \
            and isinstance(thinking.get("budget_tokens"), int):
        generation["thinkingConfig"] = {"thinkingBudget": thinking["budget_tokens"]}
    if generation:
        wire["generationConfig"] = generation
    tools = body.get("tools")
    if tools:
        wire["tools"] = [{"functionDeclarations": _declarations(tools)}]
        config = _tool_config(body.get("tool_choice") or {"type": "auto"})
        if config is not None:
            wire["toolConfig"] = config
    return wire


def _candidate(data: Any) -> dict[str, Any] | None:
    candidates = data.get("candidates")
    if not candidates:
        return None
    candidate = candidates[0]
    if not isinstance(candidate, dict):
        raise TypeError("candidate")
    return candidate


def _stop_reason(finish: Any, called: bool) -> str:
    stop = FINISH_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    return "tool_use" if called and stop == "end_turn" else stop


def _call_id(call: dict[str, Any], request_id: str, n: int) -> str:
    ident = call.get("id")
    return ident if isinstance(ident, str) and ident else f"toolu_{request_id}_{n}"


def message_from_gemini(data: Any, usage: Usage | None, ident: str, model: str,
                        request_id: str) -> dict[str, Any]:
    """A GenerateContentResponse → an Anthropic message (a dict)."""
    try:
        candidate = _candidate(data)
        content: list[dict[str, Any]] = []
        texts: list[str] = []
        calls = 0
        if candidate is None:
            stop = "refusal" if (data.get("promptFeedback") or {}).get("blockReason") \
                else "end_turn"
        else:
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    if texts:
                        content.append({"type": "text", "text": "".join(texts)})
                        texts = []
                    call = part["functionCall"]
                    content.append({"type": "tool_use", "id": _call_id(call, request_id, calls),
                                    "name": call["name"], "input": call.get("args") or {}})
                    calls += 1
                elif "text" in part and not part.get("thought"):
                    texts.append(part["text"])
            if texts:
                content.append({"type": "text", "text": "".join(texts)})
            stop = _stop_reason(candidate.get("finishReason"), calls > 0)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UpstreamServerError("the provider sent a malformed Gemini response") from exc
    return {"id": ident, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": usage_json(usage) if usage is not None else dict(_ZERO_USAGE)}


class GeminiEvents:
    """streamGenerateContent chunks → Anthropic stream events, for one response."""

    __slots__ = ("_blocks", "_calls", "_finish", "_id", "_model", "_open_text",
                 "_request_id", "_started")

    def __init__(self, ident: str, model: str, request_id: str) -> None:
        self._id = ident
        self._model = model
        self._request_id = request_id
        self._started = False
        self._blocks = 0
        self._open_text: int | None = None
        self._calls = 0
        self._finish: Any = None

    def _start(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(message_start(self._id, self._model, dict(_ZERO_USAGE)))

    def _close(self, out: list[Event]) -> None:
        if self._open_text is not None:
            out.append(block_stop(self._open_text))
            self._open_text = None

    def feed(self, event: Event, usage: Usage | None) -> list[Event]:
        try:
            return self._feed(event, usage)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamServerError("the provider sent a malformed stream event") from exc

    def _feed(self, event: Event, usage: Usage | None) -> list[Event]:
        out: list[Event] = []
        self._start(out)
        if event.name == END:
            self._close(out)
            figures = usage_json(usage) if usage is not None else dict(_ZERO_USAGE)
            figures.pop("cache_creation", None)
            out.append(message_delta(_stop_reason(self._finish, self._calls > 0), figures))
            out.append(message_stop())
            return out
        candidate = _candidate(event.json())
        if candidate is None:
            return out
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "functionCall" in part:
                self._close(out)
                call = part["functionCall"]
                index = self._blocks
                self._blocks += 1
                out.append(block_start(index, {
                    "type": "tool_use", "id": _call_id(call, self._request_id, self._calls),
                    "name": call["name"], "input": {}}))
                out.append(block_delta(index, {
                    "type": "input_json_delta",
                    "partial_json": orjson.dumps(call.get("args") or {}).decode()}))
                out.append(block_stop(index))
                self._calls += 1
            elif "text" in part and not part.get("thought") and part["text"]:
                if self._open_text is None:
                    self._open_text = self._blocks
                    self._blocks += 1
                    out.append(block_start(self._open_text, {"type": "text", "text": ""}))
                out.append(block_delta(self._open_text, {"type": "text_delta",
                                                         "text": part["text"]}))
        if candidate.get("finishReason"):
            self._finish = candidate["finishReason"]
        return out


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


class AnthropicToGemini:
    inbound = "anthropic"
    wire = "gemini"
    __slots__ = ("_context", "_events")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._events = GeminiEvents(message_id(context.request_id), context.model,
                                    context.request_id)

    def request(self, body: dict[str, Any]) -> WireRequest:
        return WireRequest(gemini_request(body))

    def response(self, reply: Reply) -> bytes:
        data = reply.data if reply.data is not None else loads_reply(reply.body)
        context = self._context
        return orjson.dumps(message_from_gemini(data, reply.usage, message_id(context.request_id),
                                                context.model, context.request_id))

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        return self._events.feed(event, usage)


def loads_reply(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamServerError("the provider sent a malformed Gemini response") from exc
