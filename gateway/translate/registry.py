"""{(inbound shape, wire shape): translator}, {inbound shape: stream writer} and {wire shape:
which stream events commit a response} — one dict each, never an if/elif ladder. A provider
with a new wire shape adds one pair module per inbound shape, one line per pair in PAIRS and
its `commits` in COMMITS."""

from __future__ import annotations

from collections.abc import Callable

from tollgate.gateway.translate.anthropic_anthropic import AnthropicPassthrough
from tollgate.gateway.translate.anthropic_bedrock import AnthropicToBedrock
from tollgate.gateway.translate.anthropic_gemini import AnthropicToGemini
from tollgate.gateway.translate.anthropic_openai import AnthropicToOpenAI
from tollgate.gateway.translate.base import Context, Outbound, Translator
from tollgate.gateway.translate.openai_anthropic import OpenAIToAnthropic
from tollgate.gateway.translate.openai_bedrock import OpenAIToBedrock
from tollgate.gateway.translate.openai_gemini import OpenAIToGemini
from tollgate.gateway.translate.openai_openai import OpenAIPassthrough
from tollgate.gateway.translate.shapes import anthropic as anthropic_shape
from tollgate.gateway.translate.shapes import bedrock as bedrock_shape
from tollgate.gateway.translate.shapes import gemini as gemini_shape
from tollgate.gateway.translate.shapes import openai as openai_shape
from tollgate.gateway.translate.sse import Event

__all__ = ["COMMITS", "INBOUND_SHAPES", "OUTBOUND", "PAIRS", "outbound", "translator"]

PAIRS: dict[tuple[str, str], Callable[[Context], Translator]] = {
    ("openai", "openai"): OpenAIPassthrough,
    ("openai", "anthropic"): OpenAIToAnthropic,
    ("anthropic", "openai"): AnthropicToOpenAI,
    ("anthropic", "anthropic"): AnthropicPassthrough,
    ("openai", "bedrock-converse"): OpenAIToBedrock,
    ("anthropic", "bedrock-converse"): AnthropicToBedrock,
    ("openai", "gemini"): OpenAIToGemini,
    ("anthropic", "gemini"): AnthropicToGemini,
}

OUTBOUND: dict[str, Callable[[str], Outbound]] = {
    "openai": openai_shape.OpenAIOutbound,
    "anthropic": anthropic_shape.AnthropicOutbound,
}

COMMITS: dict[str, Callable[[Event], bool]] = {
    "openai": openai_shape.commits,
    "anthropic": anthropic_shape.commits,
    "bedrock-converse": bedrock_shape.commits,
    "gemini": gemini_shape.commits,
}

INBOUND_SHAPES = frozenset(OUTBOUND)


def translator(inbound: str, wire: str, context: Context) -> Translator | None:
    """A fresh translator for one attempt, or None when no pair serves (inbound, wire)."""
    make = PAIRS.get((inbound, wire))
    return make(context) if make is not None else None


def outbound(inbound: str, request_id: str) -> Outbound:
    """The writer for one streamed response in the inbound shape."""
    return OUTBOUND[inbound](request_id)
