"""The SSE codec: events survive being split at every byte boundary, and encode round-trips."""

from __future__ import annotations

import pytest

from tollgate.gateway.translate.sse import Event, SSEDecoder, comment, encode

ANTHROPIC_STREAM = (
    b'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
    b": a comment line\n\n"
    b"event: ping\ndata: {\"type\": \"ping\"}\n\n"
    b"event: content_block_delta\rdata: {\"text\":\"a\"}\r\r"
    b"data: first line\ndata: second line\n\n"
    b"id: 7\nretry: 100\nevent: message_stop\ndata:{\"type\":\"message_stop\"}\n\n"
)

EXPECTED = [
    Event(b'{"type":"message_start"}', "message_start"),
    Event(b'{"type": "ping"}', "ping"),
    Event(b'{"text":"a"}', "content_block_delta"),
    Event(b"first line\nsecond line"),
    Event(b'{"type":"message_stop"}', "message_stop"),
]


def test_a_whole_stream_decodes_into_its_events():
    assert SSEDecoder().feed(ANTHROPIC_STREAM) == EXPECTED


@pytest.mark.parametrize("split", range(1, len(ANTHROPIC_STREAM)))
def test_every_chunk_boundary(split: int):
    decoder = SSEDecoder()
    events = decoder.feed(ANTHROPIC_STREAM[:split]) + decoder.feed(ANTHROPIC_STREAM[split:])
    assert events == EXPECTED


def test_one_byte_at_a_time():
    decoder = SSEDecoder()
    events = [e for i in range(len(ANTHROPIC_STREAM))
              for e in decoder.feed(ANTHROPIC_STREAM[i:i + 1])]
    assert events == EXPECTED


def test_lines_as_aiohttp_yields_them():
    decoder = SSEDecoder()
    lines = ANTHROPIC_STREAM.replace(b"\r\n", b"\n").replace(b"\r", b"\n").splitlines(True)
    events = [e for line in lines if (e := decoder.feed_line(line)) is not None]
    assert events == EXPECTED


def test_an_event_without_data_is_not_dispatched_and_an_unfinished_one_waits():
    decoder = SSEDecoder()
    assert decoder.feed(b"event: ping\n\n") == []
    assert decoder.feed(b"data: x") == []
    assert decoder.feed(b"\n\n") == [Event(b"x")]


@pytest.mark.parametrize("event", [Event(b"[DONE]"), Event(b'{"a":1}', "message_delta"),
                                   Event(b"two\nlines", "x")], ids=repr)
def test_encoding_round_trips(event: Event):
    assert SSEDecoder().feed(encode(event)) == [event]


def test_exact_bytes_of_named_and_unnamed_events_and_comments():
    assert encode(Event(b'{"a":1}')) == b'data: {"a":1}\n\n'
    assert encode(Event(b"{}", "message_stop")) == b"event: message_stop\ndata: {}\n\n"
    assert comment("tollgate-cost-usd 0.01") == b": tollgate-cost-usd 0.01\n\n"


def test_json_is_parsed_once_and_of_keeps_the_payload():
    event = Event.of("message_start", {"type": "message_start"})
    assert event.data == b'{"type":"message_start"}'
    assert event.json() is event.json()
