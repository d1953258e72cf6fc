"""Anthropic-compatible routes: parse the wire → Call → pipeline → render the wire.

    POST /v1/messages               JSON, or named SSE events when `stream: true`
    POST /v1/messages/count_tokens  `{"input_tokens": N}`

The virtual key comes as `x-api-key` (what the anthropic SDK sends) or `Authorization: Bearer`.
Requests go through the same pipeline as chat completions (policy, budgets, the fallback chain);
a target on an OpenAI-shaped provider is translated (translate/). Every error on these paths is
rendered in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}` (app.py asks
`owns()`), and a stream that fails after its first content ends with an `event: error` frame.

count_tokens asks the provider when the route's first target is an Anthropic provider (exact,
and free of charge), and otherwise — or when that provider is unreachable — answers with the
gateway's own estimate (the tokenizer admission uses, which over-estimates). It is authorized
like a request for the model but holds no budget.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tollgate.gateway import pipeline
from tollgate.gateway.api.common import (
    cost_headers,
    new_call,
    read_body,
    request_tags,
    route_headers,
    route_headers_on_error,
)
from tollgate.gateway.schemas.anthropic import (
    check_count_tokens,
    check_messages,
    forwarded_headers,
)
from tollgate.gateway.schemas.openai import parse_json_object

__all__ = ["PATH_PREFIX", "owns", "routes"]

PATH_PREFIX = "/v1/messages"


def owns(path: str) -> bool:
    """Is `path` one of this API's (so its errors are rendered in Anthropic's shape)?"""
    return path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/")


async def messages(request: Request) -> Response:
    call = new_call(request, "chat", inbound="anthropic")
    call.body = parse_json_object(await read_body(request, call.snapshot.max_body_bytes))
    call.requested_model, call.stream = check_messages(call.body)
    call.forward_headers = forwarded_headers(request.headers)
    call.tags = request_tags(request.headers.get("x-tollgate-tags"), call.body)
    with route_headers_on_error(call):
        if call.stream:
            frames = await pipeline.run_stream(call)
            return StreamingResponse(
                frames, media_type="text/event-stream",
                headers={**route_headers(call), "cache-control": "no-cache",
                         "request-id": call.request_id},
            )
        reply = await pipeline.run(call)
    return Response(reply.body, media_type="application/json",
                    headers={**route_headers(call), **cost_headers(call),
                             "request-id": call.request_id})


async def count_tokens(request: Request) -> Response:
    call = new_call(request, "chat", inbound="anthropic")
    call.body = parse_json_object(await read_body(request, call.snapshot.max_body_bytes))
    call.requested_model = check_count_tokens(call.body)
    call.forward_headers = forwarded_headers(request.headers)
    with route_headers_on_error(call):
        tokens = await pipeline.run_count(call)
    return JSONResponse({"input_tokens": tokens},
                        headers={**route_headers(call), "request-id": call.request_id})


routes = [
    Route(PATH_PREFIX, messages, methods=["POST"]),
    Route(PATH_PREFIX + "/count_tokens", count_tokens, methods=["POST"]),
]
