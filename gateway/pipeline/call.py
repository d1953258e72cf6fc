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

__all__ = ["Attempt", "Call", "Endpoint", "Shape"]

Endpoint = Literal["chat", "embeddings", "count_tokens"]
Shape = Literal["openai", "anthropic"]  # the inbound API shape (translate.registry.OUTBOUND)


@dataclass(slots=True)
class Attempt:
    """One try at one target, for the decision log and the `x-tollgate-attempts` header."""

    provider: str
    model: str
    outcome: str  # "ok" or an error code such as "upstream_timeout"
    seconds: float


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
