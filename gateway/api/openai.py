"""OpenAI-compatible routes: parse the wire → Call → pipeline → render the wire."""

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
from tollgate.gateway.pipeline.authorize import models_for_key
from tollgate.gateway.schemas.openai import check_chat, check_embeddings, parse_json_object

__all__ = ["routes"]


async def chat_completions(request: Request) -> Response:
    call = new_call(request, "chat")
    call.body = parse_json_object(await read_body(request, call.snapshot.max_body_bytes))
    call.requested_model, call.stream, call.include_usage = check_chat(call.body)
    call.tags = request_tags(request.headers.get("x-tollgate-tags"), call.body)
    with route_headers_on_error(call):
        if call.stream:
            frames = await pipeline.run_stream(call)
            return StreamingResponse(
                frames, media_type="text/event-stream",
                headers={**route_headers(call), "cache-control": "no-cache"},
            )
        reply = await pipeline.run(call)
    return Response(reply.body, media_type="application/json",
                    headers={**route_headers(call), **cost_headers(call)})


async def embeddings(request: Request) -> Response:
    call = new_call(request, "embeddings")
    call.body = parse_json_object(await read_body(request, call.snapshot.max_body_bytes))
    call.requested_model = check_embeddings(call.body)
    call.tags = request_tags(request.headers.get("x-tollgate-tags"), call.body)
    with route_headers_on_error(call):
        reply = await pipeline.run(call)
    return Response(reply.body, media_type="application/json",
                    headers={**route_headers(call), **cost_headers(call)})


async def list_models(request: Request) -> Response:
    call = new_call(request, "chat")
    assert call.key is not None
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": owner}
        for name, owner in models_for_key(call.snapshot, call.key)
    ]
    return JSONResponse({"object": "list", "data": data})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
]
