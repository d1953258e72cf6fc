"""AWS event-stream (`application/vnd.amazon.eventstream`) at the byte level: the binary
framing Bedrock's ConverseStream answers with, decoded by botocore's own parser.

Each frame is a prelude (total and header lengths, CRC32), typed headers, a payload and a
message CRC32; botocore's `EventStreamBuffer` checks both checksums and the length limits. This
module only turns frames into `Frame`s (headers + payload) and accepts input split anywhere; what
the headers mean (`:message-type` event / exception, `:event-type` …) is the adapter's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.eventstream import EventStreamBuffer, ParserError

__all__ = ["EventStreamDecoder", "EventStreamError", "Frame"]


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad checksum, length or header)."""


@dataclass(frozen=True, slots=True)
class Frame:
    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str | None:
        value = self.headers.get(":message-type")
        return value if isinstance(value, str) else None

    @property
    def event_type(self) -> str | None:
        """The event's name (`:event-type`), or the exception's (`:exception-type`)."""
        value = self.headers.get(":event-type") or self.headers.get(":exception-type") \
            or self.headers.get(":error-code")
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    """Feed any slice of the body; complete frames come out in order."""

    __slots__ = ("_buffer", "_consumed", "_fed")

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._fed = 0
        self._consumed = 0

    def feed(self, chunk: bytes) -> list[Frame]:
        if not chunk:
            return []
        self._buffer.add_data(chunk)
        self._fed += len(chunk)
        frames = []
        try:
            for message in self._buffer:
                self._consumed += message.prelude.total_length
                frames.append(Frame(dict(message.headers), bytes(message.payload)))
        except ParserError as exc:
            raise EventStreamError(f"invalid event-stream frame: {exc}") from exc
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (non-zero at the end of a body: it was cut short)."""
        return self._fed - self._consumed
