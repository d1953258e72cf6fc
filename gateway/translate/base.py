"""The translation interface: what a translator is given, what it returns, and the vocabulary
(`WireRequest`, `Reply`) that adapters and translators share.

Two shapes meet in every call: the **inbound** shape the client spoke (`openai` chat
completions, `anthropic` messages) and the **wire** shape of the provider serving this attempt
(`Provider.wire`: `openai`, `anthropic`; later `bedrock-converse`, `gemini` …). A translator
converts one (inbound, wire) pair, in one file per pair (translate/<inbound>_<wire>.py), and is
chosen from one dict (translate/registry.py). Per attempt, route.py makes one translator:

    request(body)           inbound body      → WireRequest (wire body, forwarded headers)
    response(reply)         wire reply body   → inbound body bytes
    feed(event, usage)      one wire event    → the inbound events it becomes (often none)

A translator never reads usage itself: the adapter reads it from its own wire shape into
`pricing.Usage` (OpenAI accounting), and the translator renders that figure into the inbound
shape, so cost has one source. Request translation is a pure function of the inbound body, so a
retry on the next target starts from the same body (idempotent across attempts).

`Outbound` is the other half: how a stream in an inbound shape is written to the client, which
event ends it, and how an error or a budget stop is written mid-stream. One per inbound shape,
in translate/shapes/.

Each wire shape also says which of its stream events **commit** a response (`commits`, in
translate/shapes/<wire>.py, listed in registry.COMMITS). Events before the first committing one
are held back, so the stream can still fail over: Anthropic sends `message_start` (and
`content_block_start`, `ping`) before it generates and may then report an overload as an
`error` event; OpenAI's first chunk comes with the first token, so it commits at once and the
pass-through's time to first byte is untouched.

Dependencies: translate imports pricing, errors and its own modules; providers may import
translate.base and translate.sse (the shared vocabulary and codecs), never the pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from tollgate.gateway.errors import TollgateError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.sse import Event

__all__ = ["NO_HEADERS", "Context", "Outbound", "Reply", "Translator", "WireRequest"]

NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _no_headers() -> Mapping[str, str]:
    return NO_HEADERS


@dataclass(frozen=True, slots=True)
class Context:
    """What a translator knows about one attempt."""

    model: str  # the model name the serving provider knows
    request_id: str
    stream: bool = False
    include_usage: bool = False  # the client asked for OpenAI's usage chunk
    max_output_tokens: int | None = None  # the catalog's output limit for `model`
    headers: Mapping[str, str] = field(default_factory=_no_headers)  # forwardable client headers


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request in the provider's wire shape; the adapter adds URL, auth and the model."""

    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=_no_headers)  # e.g. `anthropic-beta`
    usage_event: bool = False  # streams: pass on the wire's usage-only event (OpenAI's chunk)


@dataclass(slots=True)
class Reply:
    """A complete answer: a JSON body (wire shape from an adapter, inbound shape after the
    translator), its usage, and the parsed body when the adapter had to parse it anyway."""

    body: bytes
    usage: Usage | None
    data: Any = None


class Translator(Protocol):
    """One (inbound, wire) pair, instantiated per attempt with that attempt's Context."""

    inbound: ClassVar[str]
    wire: ClassVar[str]

    def __init__(self, context: Context) -> None: ...

    def request(self, body: dict[str, Any]) -> WireRequest:
        """The inbound body in the wire shape. Raise InvalidRequest for what cannot be said
        in the wire shape (never silently change the meaning of a request)."""
        ...

    def response(self, reply: Reply) -> bytes:
        """The wire reply as an inbound body. Raise UpstreamServerError if it is malformed."""
        ...

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        """One wire stream event → inbound events. `usage` is the adapter's latest figure."""
        ...


class Outbound(Protocol):
    """How a stream in one inbound shape is written to the client (one per response)."""

    def write(self, event: Event) -> bytes: ...

    def is_end(self, event: Event) -> bool:
        """The event that closes a complete stream ([DONE], message_stop)."""
        ...

    def counts_output(self, event: Event) -> bool:
        """Is this an output-bearing event (the budget meter's one-token-per-event count)?"""
        ...

    def error(self, error: TollgateError) -> bytes:
        """The bytes that end a started stream with `error`."""
        ...

    def stop(self, model: str, usage: Usage | None) -> bytes:
        """The bytes that end a started stream early, as an output-length cut-off would."""
        ...
