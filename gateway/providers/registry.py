"""{provider type: adapter factory} — one dict, never an if/elif ladder.

Adding a provider (e.g. bedrock, vertex, azure-openai):
1. config/models.py: a `<X>Provider(_ProviderBase)` with `type: Literal["x"]`, in ProviderConfig.
2. providers/x.py: an adapter with `wire` set to the shape it speaks — reuse an existing shape
   when the provider speaks it (Azure OpenAI: "openai"; Claude on Vertex: "anthropic"), else a
   new one ("bedrock-converse", "gemini"). URL, auth/signing, transport, `upstream_error()`
   from providers/errors.py with the shape's error body, usage into pricing.Usage, stream
   events as translate.sse.Event (a binary framing gets its own codec next to translate/sse.py).
3. A new wire shape: translate/<inbound>_<wire>.py for each inbound shape (openai, anthropic),
   a line per pair in translate/registry.PAIRS, `commits` in translate/shapes/<wire>.py and
   registry.COMMITS; tests/unit/translate/test_<inbound>_<wire>.py per pair.
4. A line here; catalog prices in data/prices.json under the provider type.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from tollgate.gateway.providers.base import Provider
from tollgate.gateway.transport import Transport

__all__ = ["ADAPTERS", "build"]

Factory = Callable[[Any, Transport, tuple[str, ...]], Provider]

# "module:class" per provider type. Adapters are imported on first use, so a gateway that
# serves no Bedrock or Vertex provider never loads botocore or google-auth (tens of MB of RSS
# and ~0.5 s of start-up).
ADAPTERS: dict[str, str] = {
    "openai": "openai:OpenAIAdapter",
    "openai-compatible": "openai:OpenAIAdapter",
    "anthropic": "anthropic:AnthropicAdapter",
    "bedrock": "bedrock:BedrockAdapter",
    "vertex": "vertex:VertexAdapter",
    "azure-openai": "azure_openai:AzureOpenAIAdapter",
    "mock": "mock:MockAdapter",
}


def _adapter_class(provider_type: str) -> Any:
    module, _, name = ADAPTERS[provider_type].partition(":")
    return getattr(import_module(f"tollgate.gateway.providers.{module}"), name)


def build(config: Any, transport: Transport, catalog_models: tuple[str, ...]) -> Provider:
    """Instantiate the adapter for one provider entry of the config."""
    adapter = _adapter_class(config.type)
    if config.type == "mock":
        return adapter(config, catalog_models)  # type: ignore[no-any-return]
    return adapter(config, transport, catalog_models)  # type: ignore[no-any-return]
