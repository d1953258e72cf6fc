"""A fake Azure OpenAI resource on 127.0.0.1: the fake OpenAI server behind Azure's addressing.

    POST /openai/deployments/{deployment}/chat/completions?api-version=…
    POST /openai/deployments/{deployment}/embeddings?api-version=…

Before the OpenAI fake answers, the Azure parts are checked: the deployment must be one the
test declared (`deployments`), `api-version` must be the expected one, and the caller must send
the `api-key` header with the expected key — or, for an Entra ID setup, `Authorization: Bearer`
with the expected token (and then no `api-key`). Failures answer Azure's 401 / 404 / 400
bodies. Everything else (replies, usage, faults, recorded requests) is the OpenAI fake's.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from aiohttp import web

from tests.fakes.loopback import serving
from tests.fakes.openai_upstream import FakeOpenAI

__all__ = ["FakeAzureOpenAI", "running_fake_azure"]


class FakeAzureOpenAI(FakeOpenAI):
    def __init__(self, *, api_version: str, deployments: set[str], api_key: str | None = None,
                 bearer: str | None = None) -> None:
        super().__init__()
        self.api_version = api_version
        self.deployments = deployments
        self.api_key = api_key
        self.bearer = bearer

    @property
    def resource_url(self) -> str:
        """The resource endpoint (what Azure calls the base URL: no /v1)."""
        return f"http://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure_chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._azure_embed)

    def _azure_error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": code, "message": message}}, status=status)

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.query.get("api-version") != self.api_version:
            return self._azure_error(404, "404", "Resource not found (unknown api-version)")
        if request.match_info["deployment"] not in self.deployments:
            return self._azure_error(404, "DeploymentNotFound",
                                     "The API deployment for this resource does not exist.")
        if self.api_key is not None and request.headers.get("api-key") != self.api_key:
            return self._azure_error(401, "401", "Access denied due to invalid subscription "
                                                 "key or wrong API endpoint.")
        if self.bearer is not None and (
                request.headers.get("authorization") != f"Bearer {self.bearer}"
                or "api-key" in request.headers):
            return self._azure_error(401, "InvalidAuthenticationToken",
                                     "The access token is invalid.")
        return None

    async def _azure_chat(self, request: web.Request) -> web.StreamResponse:
        return self._refusal(request) or await self._chat(request)

    async def _azure_embed(self, request: web.Request) -> web.StreamResponse:
        return self._refusal(request) or await self._embeddings(request)


def running_fake_azure(**options: object) -> AbstractContextManager[FakeAzureOpenAI]:
    return serving(FakeAzureOpenAI(**options))  # type: ignore[arg-type]
