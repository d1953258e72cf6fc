"""Server-sent events at the byte level: the `Event` type, an incremental decoder, the encoder.

No business logic lives here: which events end a stream, carry usage or hold content is the
business of the shapes (translate/shapes/) and the adapters. The decoder follows the WHATWG
`text/event-stream` rules (`event:`/`data:` fields, multi-line data, `:` comments, CR, LF or
CRLF line ends, a blank line dispatches, `id`/`retry` ignored) and accepts input split anywhere.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["Event", "SSEDecoder", "comment", "encode"]


class Event:
    """One event: its name (`event:` field; None for OpenAI's data-only frames) and its data.

    `json()` parses the data once and keeps the result, so the adapter reading usage and the
    translator reading content never parse the same event twice."""

    __slots__ = ("_parsed", "data", "name")

    def __init__(self, data: bytes, name: str | None = None) -> None:
        self.data = data
        self.name = name
        self._parsed: Any = _UNPARSED

    def json(self) -> Any:
        """The data as JSON (parsed on first use); raises orjson.JSONDecodeError (ValueError)."""
        if self._parsed is _UNPARSED:
            self._parsed = orjson.loads(self.data)
        return self._parsed

    @classmethod
    def of(cls, name: str | None, payload: Any) -> Event:
        """An event whose data is `payload` as compact JSON (already parsed: `json()` is free)."""
        event = cls(orjson.dumps(payload), name)
        event._parsed = payload
        return event

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.name == other.name and self.data == other.data

    __hash__ = None  # type: ignore[assignment]  # mutable cache inside; compare, don't hash

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, data={self.data[:80]!r})"


_UNPARSED: Any = object()


def encode(event: Event) -> bytes:
    """The wire bytes of one event, blank line included."""
    data = event.data
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        data = b"\ndata: ".join(lines)
    if event.name is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.name.encode() + b"\ndata: " + data + b"\n\n"


def comment(text: str) -> bytes:
    """A comment line (`: text`), which every SSE client skips; newlines are not allowed."""
    return b": " + text.replace("\n", " ").replace("\r", " ").encode() + b"\n\n"


class SSEDecoder:
    """Turns a byte stream into events. Feed whole lines (`feed_line`, as aiohttp yields them)
    or arbitrary chunks (`feed`); an event is returned once its blank line has arrived."""

    __slots__ = ("_buffer", "_data", "_name", "_pending_cr")

    def __init__(self) -> None:
        self._name: str | None = None
        self._data: list[bytes] = []
        self._buffer = b""
        self._pending_cr = False

    def feed_line(self, line: bytes) -> Event | None:
        """One line, with or without its line end."""
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        elif field == b"event":
            self._name = value.decode("utf-8", "replace")
        return None

    def feed(self, chunk: bytes) -> list[Event]:
        """Any slice of the stream; a CR at a chunk's end may pair with an LF in the next."""
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        text = self._buffer + chunk
        lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._buffer = lines.pop()
        events = []
        for line in lines:
            event = self.feed_line(line)
            if event is not None:
                events.append(event)
        return events

    def _dispatch(self) -> Event | None:
        data, name = self._data, self._name
        self._data, self._name = [], None
        if not data:
            return None
        return Event(b"\n".join(data), name)
