"""Azure OpenAI: wire shape "openai", addressed by deployment.

    POST {baseURL}/openai/deployments/{deployment}/chat/completions?api-version={apiVersion}
    POST {baseURL}/openai/deployments/{deployment}/embeddings?api-version={apiVersion}

Callers and prices use base model names (`gpt-4o`); `deployments` maps each to the Azure
deployment serving it (a model with no mapping is sent as a deployment of the same name). The
key goes in the `api-key` header, or an Entra ID access token in `Authorization: Bearer` (read
from its file or variable at each config load, like every credential). Bodies are OpenAI's:
forwarded with `model` set to the base model, streams forced to report usage
(`stream_options.include_usage`), replies and usage read exactly as the OpenAI adapter does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from tollgate.gateway.config.models import AzureOpenAIProvider
from tollgate.gateway.errors import UpstreamUnavailable
from tollgate.gateway.providers.credentials import Secret, resolve
from tollgate.gateway.providers.openai import OpenAIAdapter
from tollgate.gateway.translate.sse import Event
from tollgate.gateway.transport import Timeouts, Transport

__all__ = ["AzureOpenAIAdapter"]


class AzureOpenAIAdapter(OpenAIAdapter):
    """Adapter for `azure-openai` provider entries: the OpenAI adapter with Azure's URLs,
    credentials and content-filter preamble."""

    wire = "openai"

    def __init__(self, config: AzureOpenAIProvider,  # type: ignore[override]
                 transport: Transport, catalog_models: tuple[str, ...]) -> None:
        self.name = config.name
        self.type = config.type
        self._transport = transport
        self._base = config.base_url.rstrip("/")
        self._query = f"?api-version={quote(config.api_version, safe='')}"
        self._deployments = {d.model: d.deployment for d in config.deployments}
        self._models = config.models or tuple(self._deployments)
        t = config.timeouts
        self._timeouts = Timeouts(t.connect_seconds, t.first_byte_seconds, t.total_seconds)
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        ref = config.api_key or config.entra_token
        self._secret: Secret | None = resolve(ref) if ref is not None else None
        self.available = ref is None or self._secret is not None
        if self._secret is not None and config.api_key is not None:
            self._headers["api-key"] = self._secret.reveal()
        elif self._secret is not None:
            self._headers["authorization"] = f"Bearer {self._secret.reveal()}"

    def _url(self, model: str, operation: str) -> str:
        deployment = self._deployments.get(model, model)
        return (f"{self._base}/openai/deployments/{quote(deployment, safe='')}/{operation}"
                f"{self._query}")

    def _check_available(self) -> None:
        if not self.available:
            raise UpstreamUnavailable(f"provider {self.name!r} has no API key or Entra ID "
                                      "token (see its `apiKey` / `entraToken` reference)")

    def _drop(self, event: Event) -> bool:
        """Azure's content-filter preamble (`prompt_filter_results`, no choices)."""
        if b'"prompt_filter_results"' not in event.data:
            return False
        try:
            chunk: Any = event.json()
        except orjson.JSONDecodeError:
            return False
        return isinstance(chunk, dict) and not chunk.get("choices") and "usage" not in chunk
