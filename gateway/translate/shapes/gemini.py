"""Gemini `generateContent` ("gemini"): what its stream looks like and which events commit.

`streamGenerateContent?alt=sse` sends data-only SSE frames, each a whole
GenerateContentResponse: `candidates[0].content.parts` holds the new text (or a complete
`functionCall`), the last one a `finishReason`, and `usageMetadata` carries **running totals**
(the last one wins). Gemini has no terminal event — the body just ends — so the adapter, once
the body has ended cleanly after a `finishReason`, adds one synthetic event named `END`; the
translators finish the inbound stream on it (the usage is final by then).
"""

from __future__ import annotations

from tollgate.gateway.translate.sse import Event

__all__ = ["END", "commits", "end_event"]

END = "tollgate.end"
"""The name of the synthetic event closing a complete Gemini stream."""


def end_event() -> Event:
    return Event(b"{}", END)


def commits(event: Event) -> bool:
    """Every Gemini chunk carries generated content (the first one comes with the first
    tokens), so nothing is held back, as with OpenAI."""
    return True
