"""Anthropic inbound → Bedrock Converse wire: messages served by Converse / ConverseStream.

Converse was modelled on the Messages API, so this pair is nearly one-to-one, and it is also
the hub for OpenAI requests (openai_bedrock.py first makes them Anthropic-shaped with
openai_anthropic's request half, then comes here).

Request: `system` → `system: [{text}]`; text blocks → `{text}` (empty ones dropped: Converse
refuses blank text), a `cache_control` marker → a `{cachePoint: {type: default}}` block right
after the block (system, messages and tools alike); base64 images → `{image: {format,
source: {bytes}}}`; base64 PDFs → `{document: {format: pdf, name, source: {bytes}}}`, text
documents → text; `tool_use` → `{toolUse}`; `tool_result` → `{toolResult: {toolUseId, content:
[{text} | {image}], status}}`; thinking blocks → `{reasoningContent}`. `max_tokens`,
`temperature`, `top_p`, `stop_sequences` → `inferenceConfig`; tools → `toolConfig.tools[].toolSpec`
with `inputSchema.json`; `tool_choice` auto / any / tool → `{auto: {}}` / `{any: {}}` /
`{tool: {name}}`. For Anthropic models on Bedrock, `top_k` and `thinking` go into
`additionalModelRequestFields` (other model families refuse unknown fields).
Refused (400) because Converse cannot carry them: image or document URLs (Converse takes bytes
or S3 only), server tools. Not expressible, documented rather than refused: `tool_choice:
none` (Converse has no "none"; the tools are left out unless the conversation already holds
tool blocks, which Converse only accepts with `toolConfig` — then the model may still call a
tool), `disable_parallel_tool_use`, `metadata.user_id`.

Response and stream: `{text}` → text blocks, `{toolUse}` → tool_use, `reasoningContent` →
thinking / redacted_thinking. Stop reasons end_turn, tool_use, max_tokens, stop_sequence and
model_context_window_exceeded keep their names; guardrail_intervened and content_filtered →
refusal. Converse has no message id: `msg_<request id>`. A stream's usage arrives only in the
final `metadata` event, after `messageStop`, so `message_start` carries zero usage and the
`message_delta` written on `metadata` carries the whole figure (input and cache classes too,
which the Anthropic SDK takes from `message_delta`).
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

__all__ = ["STOP_REASONS", "AnthropicToBedrock", "ConverseEvents", "converse_request",
           "is_anthropic_model", "loads_reply", "message_from_converse", "message_id"]

STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "model_context_window_exceeded": "model_context_window_exceeded",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
}
"""Converse stopReason → Anthropic stop_reason (anything else: end_turn)."""

_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                  "image/gif": "gif", "image/webp": "webp"}
_DOCUMENT_FORMATS = {"application/pdf": "pdf", "text/plain": "txt", "text/csv": "csv",
                     "text/html": "html", "text/markdown": "md"}
_TOOL_CHOICE = {"auto": {"auto": {}}, "any": {"any": {}}}
_CACHE_POINT = {"cachePoint": {"type": "default"}}
_ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0}


def is_anthropic_model(model: str) -> bool:
    return "anthropic." in model or model.startswith("anthropic")


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") != "base64":
        raise unsupported(f"`{where}.source`: Bedrock takes images as base64 data, not "
                       f"{source.get('type')!r} sources", where)
    media_type = str(source.get("media_type") or "")
    image_format = _IMAGE_FORMATS.get(media_type)
    if image_format is None:
        raise unsupported(f"`{where}.source.media_type` {media_type!r} is not an image format "
                       "Bedrock accepts (png, jpeg, gif, webp)", where)
    return {"image": {"format": image_format, "source": {"bytes": source.get("data")}}}


def _document_name(block: dict[str, Any], index: int) -> str:
    """Converse document names allow letters, digits, spaces, hyphens, parentheses, brackets."""
    title = str(block.get("title") or f"document {index + 1}")
    cleaned = "".join(c if c.isalnum() or c in " -()[]" else " " for c in title)
    return " ".join(cleaned.split())[:200] or f"document {index + 1}"


def _document(block: dict[str, Any], where: str, index: int) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "text":
        return {"text": str(source.get("data", ""))}
    if kind != "base64":
        raise unsupported(f"`{where}.source`: Bedrock takes documents as base64 data, not "
                       f"{kind!r} sources", where)
    media_type = str(source.get("media_type") or "")
    document_format = _DOCUMENT_FORMATS.get(media_type)
    if document_format is None:
        raise unsupported(f"`{where}.source.media_type` {media_type!r} is not a document format "
                       "this gateway sends to Bedrock", where)
    return {"document": {"format": document_format, "name": _document_name(block, index),
                         "source": {"bytes": source.get("data")}}}


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"text": str(part.get("text", ""))})
            elif kind == "image":
                parts.append(_image(part, f"{where}.content[{i}]"))
            elif kind == "document":
                parts.append(_document(part, f"{where}.content[{i}]", i))
            else:
                raise unsupported(f"`{where}.content[{i}]`: {kind!r} cannot be sent in a tool "
                               "result to Bedrock", f"{where}.content[{i}]")
    else:
        parts.append({"text": "" if content is None else str(content)})
    result: dict[str, Any] = {"toolUseId": str(block.get("tool_use_id", "")), "content": parts}
    if block.get("is_error"):
        result["status"] = "error"
    return {"toolResult": result}


def _content(content: Any, where: str, role: str) -> tuple[list[dict[str, Any]], bool]:
    """A turn's blocks in Converse form, and whether it holds tool blocks."""
    if isinstance(content, str):
        return ([{"text": content}] if content else []), False
    if not isinstance(content, list):
        raise unsupported(f"`{where}` must be a string or an array of content blocks", where)
    blocks: list[dict[str, Any]] = []
    tools = False
    for i, block in enumerate(content):
        at = f"{where}[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text = str(block.get("text", ""))
            if text:
                blocks.append({"text": text})
        elif kind == "image":
            blocks.append(_image(block, at))
        elif kind == "document":
            blocks.append(_document(block, at, i))
        elif kind == "tool_use" and role == "assistant":
            tools = True
            blocks.append({"toolUse": {"toolUseId": str(block.get("id", "")),
                                       "name": str(block.get("name", "")),
                                       "input": block.get("input") or {}}})
        elif kind == "tool_result" and role == "user":
            tools = True
            blocks.append(_tool_result(block, at))
        elif kind == "thinking" and role == "assistant":
            reasoning: dict[str, Any] = {"text": str(block.get("thinking", ""))}
            if block.get("signature"):
                reasoning["signature"] = block["signature"]
            blocks.append({"reasoningContent": {"reasoningText": reasoning}})
        elif kind == "redacted_thinking" and role == "assistant":
            blocks.append({"reasoningContent": {"redactedContent": block.get("data", "")}})
        else:
            raise unsupported(f"`{at}`: content block type {kind!r} cannot be sent to Bedrock", at)
        if isinstance(block, dict) and block.get("cache_control") and blocks:
            blocks.append(dict(_CACHE_POINT))
    return blocks, tools


def _system(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"text": system}] if system else []
    if not isinstance(system, list):
        raise unsupported("`system` must be a string or an array of text blocks", "system")
    blocks: list[dict[str, Any]] = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise unsupported(f"`system[{i}]` must be a text block", f"system[{i}]")
        if block.get("text"):
            blocks.append({"text": str(block["text"])})
        if block.get("cache_control") and blocks:
            blocks.append(dict(_CACHE_POINT))
    return blocks


def _tools(tools: Any) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    for tool in custom_tools(tools):
        spec: dict[str, Any] = {"name": tool.get("name")}
        if tool.get("description"):
            spec["description"] = tool["description"]
        spec["inputSchema"] = {"json": input_schema(tool)}
        specs.append({"toolSpec": spec})
        if tool.get("cache_control"):
            specs.append(dict(_CACHE_POINT))
    return specs


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    """Converse's toolChoice; None for Anthropic's `none` (which Converse cannot say)."""
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in _TOOL_CHOICE:
        return dict(_TOOL_CHOICE[kind])
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"tool": {"name": choice["name"]}}
    if kind == "none":
        return None
    raise unsupported("`tool_choice.type` must be 'auto', 'any', 'tool' or 'none'", "tool_choice")


def converse_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic Messages body → a Converse body (the model goes in the URL, not here)."""
    messages: list[dict[str, Any]] = []
    has_tool_blocks = False
    for i, message in enumerate(body.get("messages") or ()):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise unsupported(f"`messages[{i}].role` must be 'user' or 'assistant'",
                           f"messages[{i}].role")
        blocks, tools = _content(message.get("content"), f"messages[{i}].content", role)
        has_tool_blocks = has_tool_blocks or tools
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += blocks  # Converse wants alternating roles
        else:
            messages.append({"role": role, "content": blocks})
    wire: dict[str, Any] = {"messages": messages}
    system = _system(body.get("system")) if body.get("system") else []
    if system:
        wire["system"] = system
    inference: dict[str, Any] = {}
    if body.get("max_tokens") is not None:
        inference["maxTokens"] = body["max_tokens"]
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    if body.get("stop_sequences"):
        inference["stopSequences"] = list(body["stop_sequences"])
    if inference:
        wire["inferenceConfig"] = inference
    tools = body.get("tools")
    if tools:
        choice = _tool_choice(body.get("tool_choice") or {"type": "auto"})
        if choice is not None or has_tool_blocks:
            config: dict[str, Any] = {"tools": _tools(tools)}
            if choice is not None and choice != {"auto": {}}:
                config["toolChoice"] = choice
            wire["toolConfig"] = config
    extra: dict[str, Any] = {}
    if is_anthropic_model(model):
        if body.get("top_k") is not None:
            extra["top_k"] = body["top_k"]
        if isinstance(body.get("thinking"), dict):
            extra["thinking"] = body["thinking"]
    if extra:
        wire["additionalModelRequestFields"] = extra
    return wire


def _block(block: dict[str, Any]) -> dict[str, Any] | None:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if "toolUse" in block:
        tool = block["toolUse"]
        return {"type": "tool_use", "id": tool["toolUseId"], "name": tool["name"],
                "input": tool.get("input") or {}}
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, dict):
        text = reasoning.get("reasoningText")
        if isinstance(text, dict):
            return {"type": "thinking", "thinking": text.get("text", ""),
                    "signature": text.get("signature", "")}
        if "redactedContent" in reasoning:
            return {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
    return None  # citations, guard content, images: nothing this shape carries back


def message_from_converse(data: Any, usage: Usage | None, ident: str,
                          model: str) -> dict[str, Any]:
    """A Converse response → an Anthropic message (a dict)."""
    try:
        content = [b for b in map(_block, data["output"]["message"]["content"])
                   if b is not None]
        stop = STOP_REASONS.get(data.get("stopReason"), "end_turn")
    except (KeyError, TypeError, AttributeError) as exc:
        raise UpstreamServerError("the provider sent a malformed Converse response") from exc
    return {"id": ident, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": usage_json(usage) if usage is not None else dict(_ZERO_USAGE)}


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


class ConverseEvents:
    """ConverseStream events → Anthropic stream events, for one response."""

    __slots__ = ("_blocks", "_id", "_model", "_of", "_open", "_started", "_stop")

    def __init__(self, ident: str, model: str) -> None:
        self._id = ident
        self._model = model
        self._started = False
        self._blocks = 0
        self._of: dict[int, int] = {}  # Converse contentBlockIndex → Anthropic index
        self._open: int | None = None  # the open Anthropic block
        self._stop = "end_turn"

    def _start(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(message_start(self._id, self._model, dict(_ZERO_USAGE)))

    def _close(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(block_stop(self._open))
            self._open = None

    def _open_block(self, out: list[Event], source: int, block: dict[str, Any]) -> int:
        self._close(out)
        index = self._blocks
        self._blocks += 1
        self._of[source] = index
        self._open = index
        out.append(block_start(index, block))
        return index

    def feed(self, event: Event, usage: Usage | None) -> list[Event]:
        try:
            return self._feed(event, usage)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamServerError("the provider sent a malformed stream event") from exc

    def _feed(self, event: Event, usage: Usage | None) -> list[Event]:
        out: list[Event] = []
        name = event.name
        if name == "contentBlockDelta":
            self._start(out)
            body = event.json()
            source = body["contentBlockIndex"]
            delta = body["delta"]
            index = self._of.get(source)
            if "text" in delta:
                if index is None or index != self._open:
                    index = self._open_block(out, source, {"type": "text", "text": ""})
                out.append(block_delta(index, {"type": "text_delta", "text": delta["text"]}))
            elif "toolUse" in delta:
                if index is None:
                    index = self._open_block(out, source, {
                        "type": "tool_use", "id": f"toolu_{source}", "name": "", "input": {}})
                partial = delta["toolUse"].get("input") or ""
                if partial:
                    out.append(block_delta(index, {"type": "input_json_delta",
                                                   "partial_json": partial}))
            elif isinstance(delta.get("reasoningContent"), dict):
                reasoning = delta["reasoningContent"]
                if index is None or index != self._open:
                    index = self._open_block(out, source, {"type": "thinking", "thinking": "",
                                                           "signature": ""})
                if "text" in reasoning:
                    out.append(block_delta(index, {"type": "thinking_delta",
                                                   "thinking": reasoning["text"]}))
                elif "signature" in reasoning:
                    out.append(block_delta(index, {"type": "signature_delta",
                                                   "signature": reasoning["signature"]}))
            return out
        if name == "messageStart":
            self._start(out)
            return out
        if name == "contentBlockStart":
            self._start(out)
            body = event.json()
            tool = (body.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                self._open_block(out, body["contentBlockIndex"], {
                    "type": "tool_use", "id": tool["toolUseId"], "name": tool["name"],
                    "input": {}})
            return out
        if name == "contentBlockStop":
            index = self._of.get(event.json()["contentBlockIndex"])
            if index is not None and index == self._open:
                self._close(out)
            return out
        if name == "messageStop":
            self._start(out)
            self._close(out)
            self._stop = STOP_REASONS.get(event.json().get("stopReason"), "end_turn")
            return out
        if name == "metadata":
            self._start(out)
            self._close(out)
            figures = usage_json(usage) if usage is not None else dict(_ZERO_USAGE)
            figures.pop("cache_creation", None)  # message_delta carries the totals only
            out.append(message_delta(self._stop, figures))
            out.append(message_stop())
            return out
        return out  # events this version does not know


class AnthropicToBedrock:
    inbound = "anthropic"
    wire = "bedrock-converse"
    __slots__ = ("_context", "_events")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._events = ConverseEvents(message_id(context.request_id), context.model)

    def request(self, body: dict[str, Any]) -> WireRequest:
        return WireRequest(converse_request(body, self._context.model))

    def response(self, reply: Reply) -> bytes:
        data = reply.data if reply.data is not None else loads_reply(reply.body)
        return orjson.dumps(message_from_converse(
            data, reply.usage, message_id(self._context.request_id), self._context.model))

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        return self._events.feed(event, usage)


def loads_reply(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamServerError("the provider sent a malformed Converse response") from exc
