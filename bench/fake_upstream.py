"""A fast fake OpenAI upstream for the benchmark: raw asyncio (uvloop when installed) HTTP/1.1.

It must never be the bottleneck, so it is a bare `asyncio.Protocol`: no framework, no JSON
parsing, every response body built once at start-up. It answers

* `POST …/chat/completions` with a fixed tiny `chat.completion` carrying `usage`, or, when the
  body asks for `"stream": true`, an SSE stream (role chunk, a few content chunks, a finish
  chunk, a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`) sent
  with chunked transfer encoding; `--first-event-gap-ms` holds the rest of the stream back after
  the first event, so a proxy that buffers shows up as a later first event;
* `POST …/embeddings` with a fixed one-vector embedding list;
* `GET /healthz`, `GET …/models`, and `GET /__stats` (`{"requests": N}`: requests answered so
  far, which lets the harness check that a gateway really forwarded what it claims).

Keep-alive, pipelining, `Content-Length` and chunked request bodies are supported; it binds
127.0.0.1 only. Run it alone: `python -m bench.fake_upstream --port 0` prints the port it bound.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

__all__ = ["FakeUpstream", "serve"]

MODEL = "bench-model"
_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_INCLUDE_USAGE = re.compile(rb'"include_usage"\s*:\s*true')

_COMPLETION = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"' + MODEL.encode() + b'","system_fingerprint":"fp_bench",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake."},'
    b'"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}'
)
_EMBEDDINGS = (
    b'{"object":"list","data":[{"object":"embedding","index":0,'
    b'"embedding":[0.01,-0.02,0.03,0.04]}],"model":"' + MODEL.encode() + b'",'
    b'"usage":{"prompt_tokens":3,"total_tokens":3}}'
)
_MODELS = (
    b'{"object":"list","data":[{"id":"' + MODEL.encode()
    + b'","object":"model","created":0,"owned_by":"bench"}]}'
)
_HEALTH = b'{"status":"ok"}'


def _chunk_event(delta: bytes, finish: bytes = b"null") -> bytes:
    return (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"' + MODEL.encode() + b'","choices":[{"index":0,"delta":' + delta
        + b',"logprobs":null,"finish_reason":' + finish + b"}]}\n\n"
    )


_FIRST_EVENT = _chunk_event(b'{"role":"assistant","content":""}')
_REST_EVENTS = [
    _chunk_event(b'{"content":"Hello"}'),
    _chunk_event(b'{"content":" from"}'),
    _chunk_event(b'{"content":" the fake."}'),
    _chunk_event(b"{}", b'"stop"'),
]
_USAGE_EVENT = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"' + MODEL.encode() + b'","choices":[],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}\n\n'
)
_DONE_EVENT = b"data: [DONE]\n\n"


def _response(status: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


_R_COMPLETION = _response(b"200 OK", _COMPLETION)
_R_EMBEDDINGS = _response(b"200 OK", _EMBEDDINGS)
_R_MODELS = _response(b"200 OK", _MODELS)
_R_HEALTH = _response(b"200 OK", _HEALTH)
_R_NOT_FOUND = _response(
    b"404 Not Found",
    b'{"error":{"message":"unknown path","type":"invalid_request_error","code":"not_found"}}',
)
_R_BAD = _response(
    b"400 Bad Request",
    b'{"error":{"message":"malformed request","type":"invalid_request_error","code":null}}',
)
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_FIRST = _STREAM_HEAD + _chunk(_FIRST_EVENT)
_REST_WITH_USAGE = b"".join(_chunk(e) for e in [*_REST_EVENTS, _USAGE_EVENT, _DONE_EVENT])
_REST_NO_USAGE = b"".join(_chunk(e) for e in [*_REST_EVENTS, _DONE_EVENT])
_END = b"0\r\n\r\n"


class _Connection(asyncio.Protocol):
    __slots__ = ("_server", "_transport", "_buffer", "_busy", "_close_after")

    def __init__(self, server: FakeUpstream) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False  # a stream is still being written on this connection
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have write/close.
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._drain()

    def _fail(self) -> None:
        if self._transport is not None:
            self._transport.write(_R_BAD)
            self._transport.close()
        self._buffer.clear()

    def _drain(self) -> None:
        """Answer every complete request in the buffer, in order."""
        while not self._busy and self._transport is not None:
            buffer = self._buffer
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._fail()
                return
            head = bytes(buffer[:end]).lower()
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ")
            if len(parts) != 3:
                self._fail()
                return
            method, target, version = parts
            body_start = end + 4
            if b"transfer-encoding: chunked" in head:
                parsed = _dechunk(buffer, body_start)
                if parsed is None:
                    return  # incomplete
                if parsed is False:
                    self._fail()
                    return
                body, consumed = parsed
            else:
                length = _content_length(head)
                if length < 0 or length > _MAX_BODY:
                    self._fail()
                    return
                if len(buffer) < body_start + length:
                    return
                body = bytes(buffer[body_start:body_start + length])
                consumed = body_start + length
            del buffer[:consumed]
            connection = _header(head, b"connection")
            self._close_after = connection == b"close" or (
                version == b"http/1.0" and connection != b"keep-alive")
            self._server.requests += 1
            self._respond(method, target.split(b"?", 1)[0], body)
            if self._close_after and not self._busy and self._transport is not None:
                self._transport.close()
                return

    def _respond(self, method: bytes, path: bytes, body: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if method == b"post" and path.endswith(b"/chat/completions"):
            if _STREAM_TRUE.search(body):
                rest = _REST_WITH_USAGE if _INCLUDE_USAGE.search(body) else _REST_NO_USAGE
                gap = self._server.first_event_gap
                if gap <= 0:
                    transport.write(_FIRST + rest + _END)
                    return
                transport.write(_FIRST)
                self._busy = True
                asyncio.get_running_loop().call_later(gap, self._finish_stream, rest)
            else:
                transport.write(_R_COMPLETION)
        elif method == b"post" and path.endswith(b"/embeddings"):
            transport.write(_R_EMBEDDINGS)
        elif method == b"get" and path == b"/healthz":
            transport.write(_R_HEALTH)
        elif method == b"get" and path == b"/__stats":
            stats = b'{"requests":%d}' % self._server.requests
            transport.write(_response(b"200 OK", stats))
        elif method == b"get" and path.endswith(b"/models"):
            transport.write(_R_MODELS)
        else:
            transport.write(_R_NOT_FOUND)

    def _finish_stream(self, rest: bytes) -> None:
        self._busy = False
        if self._transport is None:
            return
        self._transport.write(rest + _END)
        if self._close_after:
            self._transport.close()
            return
        self._drain()


def _header(head: bytes, name: bytes) -> bytes | None:
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    stop = head.find(b"\r\n", start)
    return head[start:stop if stop >= 0 else len(head)].strip()


def _content_length(head: bytes) -> int:
    value = _header(head, b"content-length")
    if value is None:
        return 0
    return int(value) if value.isdigit() else -1


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None | bool:
    """A chunked body from `start`: (body, bytes consumed), None if incomplete, False if bad."""
    pieces: list[bytes] = []
    pos = start
    total = 0
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return False
        total += size
        if total > _MAX_BODY:
            return False
        pos = line_end + 2
        if size == 0:
            # trailers (usually none) end with an empty line
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            return b"".join(pieces), trailer_end + 4
        if len(buffer) < pos + size + 2:
            return None
        pieces.append(bytes(buffer[pos:pos + size]))
        pos += size + 2


class FakeUpstream:
    """The server; `requests` counts the requests answered."""

    def __init__(self, first_event_gap_ms: float = 0.0) -> None:
        self.first_event_gap = first_event_gap_ms / 1000.0
        self.requests = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=2048, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def serve(port: int, first_event_gap_ms: float) -> None:
    upstream = FakeUpstream(first_event_gap_ms)
    bound = await upstream.start(port)
    print(f"fake-upstream listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await upstream.close()


def run_loop(coroutine: object) -> None:
    """Run a coroutine on uvloop when it is installed, else on the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(coroutine)  # type: ignore[arg-type]
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_upstream",
                                     description="Fast fake OpenAI upstream on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port, printed)")
    parser.add_argument("--first-event-gap-ms", type=float, default=0.0,
                        help="streams: wait this long after the first SSE event (default 0)")
    args = parser.parse_args(argv)
    run_loop(serve(args.port, args.first_event_gap_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
