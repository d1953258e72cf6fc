"""OpenAI embeddings requests and responses ↔ the embedding APIs of Bedrock and Vertex AI.

Embeddings have one inbound shape (OpenAI's `/v1/embeddings`), so there is no pair registry:
the adapters call these pure functions directly, like the byte codecs.

    Bedrock InvokeModel, Titan Text Embeddings v2   {"inputText", "dimensions", "normalize"}
        → {"embedding": [...], "inputTextTokenCount"} — one text per call
    Bedrock InvokeModel, Cohere Embed v3 / v4       {"texts", "input_type", ["embedding_types",
        "output_dimension"]} → {"embeddings": [[...]] | {"float": [[...]]}} — up to 96 texts
    Vertex AI :predict (text-embedding-00x, gemini-embedding-001)
        {"instances": [{"content"}], "parameters": {"outputDimensionality", "autoTruncate"}}
        → {"predictions": [{"embeddings": {"values", "statistics": {"token_count"}}}]}

The answer is OpenAI's list object; vectors are float lists, or base64 little-endian float32
when the request says `encoding_format: base64` (what the openai SDK asks for by default).
`input` must be a string or a list of strings: token-id arrays mean nothing to these models
(400). `dimensions` maps to each API's output size; `user` is dropped.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

from tollgate.gateway.errors import InvalidRequest, UpstreamServerError

__all__ = [
    "COHERE_BATCH",
    "cohere_request",
    "cohere_vectors",
    "family",
    "inputs",
    "openai_list",
    "titan_request",
    "titan_vector",
    "vertex_batch_size",
    "vertex_request",
    "vertex_vectors",
]

COHERE_BATCH = 96
"""Cohere Embed takes at most 96 texts per call."""


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_for_provider")


def inputs(body: dict[str, Any]) -> list[str]:
    """The texts to embed, in order."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise _invalid("`input` must be a string or an array of strings for this provider "
                   "(token arrays are OpenAI's own)", "input")


def _dimensions(body: dict[str, Any]) -> int | None:
    value = body.get("dimensions")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid("`dimensions` must be a positive integer", "dimensions")
    return value


def family(model: str) -> str | None:
    """Which Bedrock embedding API a model id speaks: "titan", "cohere" or None."""
    if "titan-embed" in model:
        return "titan"
    if "cohere.embed" in model:
        return "cohere"
    return None


def titan_request(text: str, body: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"inputText": text}
    dimensions = _dimensions(body)
    if dimensions is not None:
        request["dimensions"] = dimensions
        request["normalize"] = True
    return request


def titan_vector(data: Any) -> tuple[list[float], int | None]:
    """(vector, tokens counted by Titan)."""
    try:
        vector = data["embedding"]
        count = data.get("inputTextTokenCount")
    except (KeyError, TypeError, AttributeError) as exc:
        raise UpstreamServerError("the provider sent a malformed embedding") from exc
    if not isinstance(vector, list):
        raise UpstreamServerError("the provider sent a malformed embedding")
    return vector, count if isinstance(count, int) and not isinstance(count, bool) else None


def cohere_request(texts: Sequence[str], body: dict[str, Any], model: str) -> dict[str, Any]:
    request: dict[str, Any] = {"texts": list(texts), "input_type": "search_document"}
    dimensions = _dimensions(body)
    if "embed-v4" in model:
        request["embedding_types"] = ["float"]
        if dimensions is not None:
            request["output_dimension"] = dimensions
    elif dimensions is not None:
        raise _invalid("this Cohere model has a fixed size; leave out `dimensions`",
                       "dimensions")
    return request


def cohere_vectors(data: Any) -> list[list[float]]:
    try:
        embeddings = data["embeddings"]
        if isinstance(embeddings, dict):
            embeddings = embeddings["float"]
    except (KeyError, TypeError) as exc:
        raise UpstreamServerError("the provider sent malformed embeddings") from exc
    if not isinstance(embeddings, list):
        raise UpstreamServerError("the provider sent malformed embeddings")
    return embeddings


def vertex_batch_size(model: str) -> int:
    """Instances per :predict call: gemini-embedding takes one, the text-embedding models 250."""
    return 1 if model.startswith("gemini-embedding") else 250


def vertex_request(texts: Sequence[str], body: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {"autoTruncate": False}
    dimensions = _dimensions(body)
    if dimensions is not None:
        parameters["outputDimensionality"] = dimensions
    return {"instances": [{"content": text} for text in texts], "parameters": parameters}


def vertex_vectors(data: Any) -> tuple[list[list[float]], int]:
    """(vectors, tokens counted by Vertex)."""
    try:
        vectors, tokens = [], 0
        for prediction in data["predictions"]:
            embedding = prediction["embeddings"]
            vectors.append(embedding["values"])
            count = (embedding.get("statistics") or {}).get("token_count") or 0
            tokens += int(count)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamServerError("the provider sent malformed embeddings") from exc
    return vectors, tokens


def _encode(vector: list[float], encoding: Any) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def openai_list(vectors: Sequence[list[float]], model: str, tokens: int,
                body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's embeddings response."""
    encoding = body.get("encoding_format")
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": _encode(v, encoding)}
                 for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
