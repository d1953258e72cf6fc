"""Light checks of Anthropic Messages request bodies: the fields the gateway itself relies on
(to route, to reserve budget, and to translate), with Anthropic's own rules for them.

Deliberately not a full model of the request: the provider validates its own API, and the
translators refuse what they cannot express. Errors name the field the way Anthropic does.
"""

from __future__ import annotations

from typing import Any

from tollgate.gateway.errors import InvalidRequest

__all__ = ["FORWARDED_HEADERS", "check_count_tokens", "check_messages", "forwarded_headers"]

FORWARDED_HEADERS = ("anthropic-beta",)
"""Client headers passed on to an Anthropic upstream (pass-through only, never translated)."""

_ROLES = ("user", "assistant")


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise _invalid("model: Field required", "model")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("model: must be a non-empty string", "model")
    return model


def _messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _invalid("messages: Field required", "messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages: must be a non-empty array", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _invalid(f"messages.{index}: must be an object whose `role` is 'user' or "
                           "'assistant' (the system prompt is the top-level `system`)",
                           f"messages.{index}")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise _invalid(f"messages.{index}.content: must be a string or an array of "
                           "content blocks", f"messages.{index}.content")
        if isinstance(content, list) and not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in content):
            raise _invalid(f"messages.{index}.content: every block must be an object with a "
                           "`type`", f"messages.{index}.content")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise _invalid("system: must be a string or an array of text blocks", "system")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _invalid("tools: must be an array", "tools")


def check_messages(body: dict[str, Any]) -> tuple[str, bool]:
    """POST /v1/messages → (model, stream)."""
    model = _model(body)
    _messages(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _invalid("max_tokens: Field required", "max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _invalid("max_tokens: must be a positive integer", "max_tokens")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream: must be a boolean", "stream")
    return model, bool(stream)


def check_count_tokens(body: dict[str, Any]) -> str:
    """POST /v1/messages/count_tokens → model."""
    model = _model(body)
    _messages(body)
    return model


def forwarded_headers(headers: Any) -> dict[str, str]:
    """The client headers an Anthropic pass-through forwards (see FORWARDED_HEADERS)."""
    return {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
