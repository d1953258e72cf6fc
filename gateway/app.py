"""create_app(): routes, middleware, error rendering, and the lifespan that owns the long-lived
resources (upstream client, config holder and its watcher). No module globals."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from tollgate.gateway import metrics
from tollgate.gateway.api import anthropic as anthropic_api
from tollgate.gateway.api import keys as keys_api
from tollgate.gateway.api import openai as openai_api
from tollgate.gateway.api import ops
from tollgate.gateway.api.middleware import RequestIdMiddleware
from tollgate.gateway.config.loader import ConfigHolder, ConfigWatcher
from tollgate.gateway.errors import InvalidRequest, ModelNotFound, TollgateError
from tollgate.gateway.pricing import load_catalog
from tollgate.gateway.runtime import Snapshot, build_snapshot, credential_files
from tollgate.gateway.store.factory import StoreCache
from tollgate.gateway.transport import AiohttpTransport

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("tollgate.app")

CONFIG_ENV = "TOLLGATE_CONFIG"


def _render(request: Request, error: TollgateError) -> Response:
    """The error in the shape of the API the path belongs to (Anthropic's for /v1/messages)."""
    body = error.anthropic_body() if anthropic_api.owns(request.url.path) else error.body()
    return Response(body, status_code=error.status, media_type="application/json",
                    headers=error.headers)


async def _on_tollgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TollgateError)
    return _render(request, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _render(request, ModelNotFound(f"unknown path {request.url.path}",
                                              code="unknown_url"))
    error = InvalidRequest(str(exc.detail), status=exc.status_code, code="invalid_request")
    return _render(request, error)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", extra={"request_id": request.scope["state"].get(
        "request_id")})
    return _render(request,
                   TollgateError("the gateway hit an internal error; it has been logged"))


def _on_reload(result: str) -> None:
    metrics.CONFIG_RELOADS.labels(result).inc()
    if result == "loaded":
        metrics.CONFIG_REVISION_LOADED.set(time.time())


def create_app(config_path: str, *, watch_interval: float = 0.25) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        transport = AiohttpTransport()
        stores = StoreCache(base_dir=os.path.dirname(os.path.abspath(config_path)))
        catalog = load_catalog()
        holder: ConfigHolder[Snapshot] = ConfigHolder()
        watcher = ConfigWatcher(
            config_path, holder,
            build=lambda config, revision: build_snapshot(
                config, revision, transport, catalog, stores),
            watched_files=credential_files,
            on_result=_on_reload,
            interval=watch_interval,
        )
        watcher.load()
        task = asyncio.create_task(watcher.run(), name="tollgate-config-watcher")
        try:
            yield {"holder": holder, "watcher": watcher}
        finally:
            task.cancel()
            await transport.aclose()
            await stores.aclose()

    app = FastAPI(
        title="Tollgate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
        routes=[*openai_api.routes, *anthropic_api.routes, *keys_api.routes, *ops.routes],
        exception_handlers={
            TollgateError: _on_tollgate_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
    )
    return app


def app_from_env() -> ASGIApp:
    """Factory for uvicorn (`--factory`), so several worker processes can each build the app.

    The request-id middleware wraps the whole FastAPI app — outside Starlette's
    ServerErrorMiddleware — so even an unexpected 500 carries `x-request-id`."""
    return RequestIdMiddleware(create_app(os.environ[CONFIG_ENV]))
