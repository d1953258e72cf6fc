"""Light checks of OpenAI request bodies: the fields the gateway itself relies on.

Deliberately not a full pydantic model of the request: the provider validates its own API, and
a whole-body model on the hot path would cost more than the rest of the gateway together.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollgate.gateway.errors import InvalidRequest

__all__ = ["check_chat", "check_embeddings", "parse_json_object"]


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc.msg})") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter", param="model",
                             code="missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` must be a non-empty string", param="model",
                             code="invalid_type")
    return model


def check_chat(body: dict[str, Any]) -> tuple[str, bool, bool]:
    """→ (model, stream, include_usage)."""
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("missing required parameter: 'messages'", param="messages",
                             code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array", param="messages",
                             code="invalid_type")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"`messages[{index}]` must be an object with a `role`",
                                 param=f"messages[{index}]", code="invalid_type")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise InvalidRequest("`stream` must be a boolean", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("`stream_options` must be an object", param="stream_options",
                             code="invalid_type")
    include_usage = bool(options and options.get("include_usage"))
    return model, bool(stream), include_usage


def check_embeddings(body: dict[str, Any]) -> str:
    model = _model(body)
    value = body.get("input")
    if value is None:
        raise InvalidRequest("missing required parameter: 'input'", param="input",
                             code="missing_required_parameter")
    if not isinstance(value, str | list) or (isinstance(value, list) and not value):
        raise InvalidRequest("`input` must be a string or a non-empty array", param="input",
                             code="invalid_type")
    return model
