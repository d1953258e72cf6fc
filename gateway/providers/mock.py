"""The built-in `mock` provider: deterministic OpenAI-shaped replies without any network.

For demos (`make run` answers with no provider account) and tests. Latency and a failure rate
are configurable; failures come from a seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollgate.gateway.config.models import MockProvider
from tollgate.gateway.errors import UpstreamServerError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.base import ChatStream, Reply, WireRequest
from tollgate.gateway.translate.shapes.openai import DONE, usage_json
from tollgate.gateway.translate.sse import Event

__all__ = ["MockAdapter", "mock_reply_text"]

_EMBEDDING_DIMENSIONS = 8


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict)
        )
    return ""


def mock_reply_text(messages: list[Any]) -> str:
    """The mock's answer: a fixed sentence quoting the last user message (deterministic)."""
    last_user = next(
        (_text_of(m.get("content")) for m in reversed(messages)
         if isinstance(m, dict) and m.get("role") == "user"),
        "",
    )
    quoted = " ".join(last_user.split()[:24])
    return f"This is Tollgate's mock provider. You said: {quoted}"


def _count_tokens(text: str) -> int:
    """A stable stand-in for a tokenizer: one token per 4 characters, at least one per word."""
    return max(len(text.split()), (len(text) + 3) // 4)


class MockAdapter:
    type = "mock"
    wire = "openai"
    available = True

    def __init__(self, config: MockProvider, catalog_models: tuple[str, ...]) -> None:
        self.name = config.name
        self._config = config
        self._models = config.models or catalog_models
        self._random = random.Random(config.name)
        self._counter = 0

    def served_models(self) -> tuple[str, ...]:
        return tuple(self._models)

    async def _behave(self) -> None:
        if self._config.latency_ms:
            await asyncio.sleep(self._config.latency_ms / 1000)
        if self._config.failure_rate and self._random.random() < self._config.failure_rate:
            raise UpstreamServerError(f"provider {self.name!r} failed (mock failure injection)")

    def _answer(self, body: dict[str, Any]) -> tuple[str, Usage, str]:
        messages = body.get("messages") or []
        text = mock_reply_text(messages)
        prompt = sum(
            _count_tokens(_text_of(m.get("content"))) + 3 for m in messages if isinstance(m, dict)
        )
        usage = Usage(input_tokens=prompt, output_tokens=len(text.split()))
        self._counter += 1
        return text, usage, f"chatcmpl-mock-{self._counter}"

    async def chat(self, request: WireRequest, model: str) -> Reply:
        await self._behave()
        text, usage, ident = self._answer(request.body)
        reply = {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": usage_json(usage),
        }
        return Reply(body=orjson.dumps(reply), usage=usage)

    async def chat_stream(self, request: WireRequest, model: str) -> ChatStream:
        await self._behave()
        text, usage, ident = self._answer(request.body)
        stream = ChatStream()
        return stream.bind(self._frames(stream, text, usage, ident, model, request.usage_event))

    async def _frames(self, stream: ChatStream, text: str, usage: Usage, ident: str, model: str,
                      include_usage: bool) -> AsyncIterator[Event]:
        created = int(time.time())

        def frame(delta: dict[str, Any], finish: str | None) -> Event:
            chunk = {
                "id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}],
            }
            return Event(orjson.dumps(chunk))

        yield frame({"role": "assistant", "content": ""}, None)
        words = text.split(" ")
        size = self._config.stream_chunk_words
        for start in range(0, len(words), size):
            piece = " ".join(words[start:start + size])
            yield frame({"content": piece if start == 0 else " " + piece}, None)
        yield frame({}, "stop")
        stream.usage = usage
        if include_usage:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": [], "usage": usage_json(usage)}
            yield Event(orjson.dumps(chunk))
        yield DONE

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        await self._behave()
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        tokens = 0
        for index, item in enumerate(items):
            text = item if isinstance(item, str) else orjson.dumps(item).decode()
            tokens += _count_tokens(text)
            digest = hashlib.sha256(text.encode()).digest()
            vector = [round(b / 255 * 2 - 1, 6) for b in digest[:_EMBEDDING_DIMENSIONS]]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        usage = Usage(input_tokens=tokens)
        reply = {"object": "list", "data": data, "model": model,
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return Reply(body=orjson.dumps(reply), usage=usage)
