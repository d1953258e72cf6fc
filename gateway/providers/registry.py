"""{provider type: adapter factory} — one dict, never an if/elif ladder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tollgate.gateway.providers.anthropic import AnthropicAdapter
from tollgate.gateway.providers.base import Provider
from tollgate.gateway.providers.mock import MockAdapter
from tollgate.gateway.providers.openai import OpenAIAdapter
from tollgate.gateway.transport import Transport

__all__ = ["ADAPTERS", "build"]

Factory = Callable[[Any, Transport, tuple[str, ...]], Provider]

ADAPTERS: dict[str, Factory] = {
    "openai": lambda config, transport, models: OpenAIAdapter(config, transport, models),
    "openai-compatible": lambda config, transport, models: OpenAIAdapter(config, transport, models),
    "anthropic": lambda config, transport, models: AnthropicAdapter(config, transport, models),
    "mock": lambda config, transport, models: MockAdapter(config, models),
}


def build(config: Any, transport: Transport, catalog_models: tuple[str, ...]) -> Provider:
    """Instantiate the adapter for one provider entry of the config."""
    return ADAPTERS[config.type](config, transport, catalog_models)
