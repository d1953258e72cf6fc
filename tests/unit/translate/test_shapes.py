"""The inbound stream writers: which events commit a response, the end, errors, early stops."""

from __future__ import annotations

import json

import pytest

from tollgate.gateway.errors import UpstreamOverloaded, UpstreamServerError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.registry import COMMITS, INBOUND_SHAPES, PAIRS, outbound
from tollgate.gateway.translate.shapes.anthropic import (
    AnthropicOutbound,
    block_start,
    message_start,
    usage_json,
)
from tollgate.gateway.translate.shapes.openai import DONE
from tollgate.gateway.translate.sse import Event, SSEDecoder


def test_every_inbound_shape_has_a_writer_and_a_pair_for_every_wire_shape():
    wires = {wire for _, wire in PAIRS}
    assert {(i, w) for i in INBOUND_SHAPES for w in wires} <= set(PAIRS)
    assert wires <= set(COMMITS), "every wire shape says which events commit a stream"
    for (inbound, wire), pair in PAIRS.items():
        assert (pair.inbound, pair.wire) == (inbound, wire)  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", [
    Event(b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'),
    Event(b'{"choices":[{"index":0,"delta":{"content":"Hi"}}]}'),
    DONE,
], ids=["role-chunk", "content", "done"])
def test_every_openai_wire_event_commits_so_the_first_byte_is_never_delayed(event: Event):
    assert COMMITS["openai"](event) is True


@pytest.mark.parametrize(("name", "commits"), [
    ("message_start", False), ("content_block_start", False), ("ping", False),
    ("content_block_delta", True), ("message_delta", True), ("message_stop", True),
    ("error", True),
])
def test_anthropic_lifecycle_events_are_held_and_the_first_delta_commits(name: str,
                                                                        commits: bool):
    assert COMMITS["anthropic"](Event(b"{}", name)) is commits


def test_openai_ends_with_done_and_errors_are_data_frames():
    writer = outbound("openai", "r")
    assert writer.is_end(DONE) and not writer.is_end(Event(b'{"choices": []}'))
    frame = writer.error(UpstreamServerError("provider 'p' failed"))
    assert frame.startswith(b'data: {"error":{"message":"provider \'p\' failed"')
    stop = writer.stop("gpt-4o", None).split(b"\n\n")
    assert json.loads(stop[0][6:])["choices"][0]["finish_reason"] == "length"
    assert stop[1] == b"data: [DONE]"


def test_anthropic_errors_are_error_events_in_anthropic_shape():
    frame = outbound("anthropic", "r").error(UpstreamOverloaded("provider 'a' is overloaded"))
    [event] = SSEDecoder().feed(frame)
    assert event.name == "error"
    assert event.json() == {"type": "error", "error": {
        "type": "overloaded_error", "message": "provider 'a' is overloaded"}}


def test_an_anthropic_early_stop_closes_the_open_block_first():
    writer = AnthropicOutbound("r")
    writer.write(message_start("m", "c", {}))
    writer.write(block_start(0, {"type": "text", "text": ""}))
    events = SSEDecoder().feed(writer.stop("c", Usage(input_tokens=3, output_tokens=9)))
    assert [(e.name, e.json()) for e in events] == [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_anthropic_usage_takes_both_cache_classes_out_of_input():
    usage = Usage(input_tokens=2600, output_tokens=50, cached_input_tokens=2000,
                  cache_write_tokens=500, cache_write_1h_tokens=100)
    assert usage_json(usage) == {
        "input_tokens": 100, "cache_creation_input_tokens": 500,
        "cache_read_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 100},
        "output_tokens": 50}
