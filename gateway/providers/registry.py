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
from typing import Any

from tollgate.gateway.providers.anthropic import AnthropicAdapter
from tollgate.gateway.providers.azure_openai import AzureOpenAIAdapter
from tollgate.gateway.providers.base import Provider
from tollgate.gateway.providers.bedrock import BedrockAdapter
from tollgate.gateway.providers.mock import MockAdapter
from tollgate.gateway.providers.openai import OpenAIAdapter
from tollgate.gateway.providers.vertex import VertexAdapter
from tollgate.gateway.transport import Transport

__all__ = ["ADAPTERS", "build"]

Factory = Callable[[Any, Transport, tuple[str, ...]], Provider]

ADAPTERS: dict[str, Factory] = {
    "openai": lambda config, transport, models: OpenAIAdapter(config, transport, models),
    "openai-compatible": lambda config, transport, models: OpenAIAdapter(config, transport, models),
    "anthropic": lambda config, transport, models: AnthropicAdapter(config, transport, models),
    "bedrock": lambda config, transport, models: BedrockAdapter(config, transport, models),
    "vertex": lambda config, transport, models: VertexAdapter(config, transport, models),
    "azure-openai": lambda config, transport, models: AzureOpenAIAdapter(config, transport,
                                                                         models),
    "mock": lambda config, transport, models: MockAdapter(config, models),
}


def build(config: Any, transport: Transport, catalog_models: tuple[str, ...]) -> Provider:
    """Instantiate the adapter for one provider entry of the config."""
    return ADAPTERS[config.type](config, transport, catalog_models)
