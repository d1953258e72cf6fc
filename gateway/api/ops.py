"""Operational routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tollgate.gateway import exposition

__all__ = ["routes"]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    holder = request.scope["state"]["holder"]
    if holder.current is None:
        return JSONResponse(
            {"status": "not ready", "reason": holder.last_error or "no config loaded yet"},
            status_code=503,
        )
    body = {"status": "ready", "configRevision": holder.current.revision}
    if holder.last_error:
        body["lastReloadError"] = holder.last_error
    return JSONResponse(body)


async def metrics(request: Request) -> Response:
    return Response(exposition.render(), media_type=exposition.CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
