"""Tollgate's gateway: an OpenAI-compatible LLM proxy with virtual keys and failover."""

from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.errors import TollgateError

__all__ = ["GatewayConfig", "TollgateError", "create_app"]


def __getattr__(name: str) -> object:
    # create_app pulls in FastAPI and aiohttp; the operator imports only the config models.
    if name == "create_app":
        from tollgate.gateway.app import create_app

        return create_app
    raise AttributeError(name)
