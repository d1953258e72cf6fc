"""AWS event-stream framing: botocore's parser behind our decoder, fed at every split."""

from __future__ import annotations

import json

import pytest

from tests.fakes.bedrock_upstream import encode_frame
from tollgate.gateway.translate.eventstream import EventStreamDecoder, EventStreamError

HEADERS = {":event-type": "contentBlockDelta", ":content-type": "application/json",
           ":message-type": "event"}
FRAMES = [encode_frame(HEADERS, json.dumps({"contentBlockIndex": 0,
                                            "delta": {"text": f"word{i}\n"}}).encode())
          for i in range(3)]
BODY = b"".join(FRAMES)


def test_whole_frames_decode_with_their_headers_and_payloads():
    frames = EventStreamDecoder().feed(BODY)
    assert [f.event_type for f in frames] == ["contentBlockDelta"] * 3
    assert [f.message_type for f in frames] == ["event"] * 3
    assert json.loads(frames[2].payload)["delta"]["text"] == "word2\n"


@pytest.mark.parametrize("split", range(1, len(BODY)))
def test_every_chunk_boundary(split: int):
    decoder = EventStreamDecoder()
    frames = decoder.feed(BODY[:split]) + decoder.feed(BODY[split:])
    assert [json.loads(f.payload)["delta"]["text"] for f in frames] == [
        "word0\n", "word1\n", "word2\n"]
    assert decoder.pending == 0


def test_a_body_cut_inside_a_frame_leaves_bytes_pending():
    decoder = EventStreamDecoder()
    assert len(decoder.feed(BODY[:-5])) == 2
    assert decoder.pending == len(FRAMES[2]) - 5


def test_a_corrupted_frame_is_an_error_not_garbage():
    broken = bytearray(FRAMES[0])
    broken[20] ^= 0xFF
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(bytes(broken))


def test_exception_frames_name_the_exception():
    frame = encode_frame({":exception-type": "throttlingException",
                          ":message-type": "exception"}, b'{"message":"slow down"}')
    [decoded] = EventStreamDecoder().feed(frame)
    assert (decoded.message_type, decoded.event_type) == ("exception", "throttlingException")
