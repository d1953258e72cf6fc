"""OpenAI embeddings ↔ Titan, Cohere and Vertex :predict."""

from __future__ import annotations

import base64
import struct

import pytest

from tollgate.gateway.errors import InvalidRequest, UpstreamServerError
from tollgate.gateway.translate import embeddings


def test_inputs_are_strings_and_token_arrays_are_refused():
    assert embeddings.inputs({"input": "a"}) == ["a"]
    assert embeddings.inputs({"input": ["a", "b"]}) == ["a", "b"]
    with pytest.raises(InvalidRequest):
        embeddings.inputs({"input": [1, 2, 3]})


def test_model_families():
    assert embeddings.family("amazon.titan-embed-text-v2:0") == "titan"
    assert embeddings.family("us.cohere.embed-v4:0") == "cohere"
    assert embeddings.family("anthropic.claude-sonnet-4-5") is None


def test_titan_cohere_and_vertex_requests():
    assert embeddings.titan_request("hi", {"dimensions": 256}) == {
        "inputText": "hi", "dimensions": 256, "normalize": True}
    assert embeddings.cohere_request(["a"], {}, "cohere.embed-english-v3") == {
        "texts": ["a"], "input_type": "search_document"}
    assert embeddings.cohere_request(["a"], {"dimensions": 512}, "cohere.embed-v4:0") == {
        "texts": ["a"], "input_type": "search_document", "embedding_types": ["float"],
        "output_dimension": 512}
    with pytest.raises(InvalidRequest):
        embeddings.cohere_request(["a"], {"dimensions": 512}, "cohere.embed-english-v3")
    assert embeddings.vertex_request(["a", "b"], {}) == {
        "instances": [{"content": "a"}, {"content": "b"}], "parameters": {"autoTruncate": False}}
    assert embeddings.vertex_batch_size("gemini-embedding-001") == 1


def test_replies_are_read_and_malformed_ones_refused():
    assert embeddings.titan_vector({"embedding": [0.5], "inputTextTokenCount": 3}) == ([0.5], 3)
    assert embeddings.cohere_vectors({"embeddings": {"float": [[1.0]]}}) == [[1.0]]
    assert embeddings.vertex_vectors({"predictions": [
        {"embeddings": {"values": [0.1], "statistics": {"token_count": 4}}}]}) == ([[0.1]], 4)
    with pytest.raises(UpstreamServerError):
        embeddings.cohere_vectors({"nope": 1})


def test_the_openai_list_in_floats_or_base64_float32():
    floats = embeddings.openai_list([[0.5, 1.0]], "m", 7, {})
    assert floats == {"object": "list", "model": "m",
                      "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 1.0]}],
                      "usage": {"prompt_tokens": 7, "total_tokens": 7}}
    packed = embeddings.openai_list([[0.5, 1.0]], "m", 7, {"encoding_format": "base64"})
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, 1.0)
