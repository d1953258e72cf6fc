"""Call: the per-request object the pipeline stages read and extend, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tollgate.gateway.config.models import Target
from tollgate.gateway.money import Micros
from tollgate.gateway.pricing import Usage
from tollgate.gateway.runtime import KeyPolicy, Snapshot

if TYPE_CHECKING:
    from tollgate.gateway.pipeline.govern import Hold
    from tollgate.gateway.pipeline.resilience import Resilience
    from tollgate.gateway.store.base import Admission

__all__ = ["Attempt", "Call", "Endpoint", "Shape"]

Endpoint = Literal["chat", "embeddings", "count_tokens"]
Shape = Literal["openai", "anthropic"]  # the inbound API shape (translate.registry.OUTBOUND)


@dataclass(slots=True)
class Attempt:
    """One try at one target, for the decision log and the `x-tollgate-attempts` header."""

    provider: str
    model: str
    outcome: str  # "ok" or an error code such as "upstream_timeout" or "circuit_open"
    seconds: float  # a retry's include the backoff wait before it; 0 for "circuit_open"


@dataclass(slots=True)
class Call:
    request_id: str
    endpoint: Endpoint
    snapshot: Snapshot
    body: dict[str, Any]
    started: float
    inbound: Shape = "openai"
    stream: bool = False
    include_usage: bool = False
    forward_headers: dict[str, str] = field(default_factory=dict)  # e.g. anthropic-beta
    token: str | None = None
    key: KeyPolicy | None = None
    requested_model: str = ""
    route: tuple[Target, ...] = ()
    attempts: list[Attempt] = field(default_factory=list)
    served_by: Target | None = None
    usage: Usage | None = None
    cost_micros: Micros | None = None
    priced: bool = False
    outcome: str = "pending"
    error_code: str | None = None
    hold: Hold | None = None
    tags: dict[str, str] = field(default_factory=dict)
    resilience: Resilience | None = None  # retry budgets + breakers (lifespan-owned); None: off
    # --- observability (record.py reads these; none of them changes what is served) ---
    rejection: Admission | None = None  # the store's answer when admission refused the call
    dispatched: float = 0.0  # perf_counter when routing began (attempt i starts after i-1)
    upstream_seconds: float = 0.0  # time waiting on a committed stream's next event
    first_token_seconds: float | None = None  # streams: start → first event written
    store_calls: list[tuple[str, float, float]] = field(default_factory=list)  # (op, t0, t1)
    response_body: bytes | bytearray | None = None  # only for keys with `logBodies`
    tracer: Any = None  # tracing.Tracer when tracing is on, else None (no cost)
    traceparent: str | None = None  # the caller's W3C trace context (only when tracing)
