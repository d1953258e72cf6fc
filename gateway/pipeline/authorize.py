"""Stage 2 — authorize: resolve the requested model to an ordered route the key may use.

Resolution, first match wins:
1. an alias from `models` (its targets, in order);
2. `provider/model` naming a configured provider explicitly;
3. the providers that serve the model (their `models` list, or the price catalog).
Then, for chat, when the requested model is part of the key's `fallbacks` chain, the rest of
that chain follows in its declared order. Targets on providers the key may not use are dropped.
"""

from __future__ import annotations

from tollgate.gateway.config.models import Target
from tollgate.gateway.errors import ModelNotFound, PermissionDenied
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.runtime import KeyPolicy, Snapshot

__all__ = ["authorize", "models_for_key", "resolve_targets"]


def resolve_targets(snapshot: Snapshot, model: str) -> tuple[Target, ...]:
    """The targets a model name stands for, before any key policy."""
    alias = snapshot.aliases.get(model)
    if alias is not None:
        return alias
    provider, slash, name = model.partition("/")
    if slash and provider in snapshot.providers and name:
        return (Target(provider=provider, model=name),)
    return snapshot.model_index.get(model, ())


def authorize(call: Call) -> None:
    key = call.key
    assert key is not None
    model = call.requested_model
    if key.allowed_models is not None and model not in key.allowed_models:
        raise PermissionDenied(
            f"virtual key {key.id!r} may not use model {model!r}", code="model_not_allowed",
            param="model",
        )
    targets = list(resolve_targets(call.snapshot, model))
    in_chain = call.endpoint == "chat" and any(t.model == model for t in key.config.fallbacks)
    if not targets and not in_chain:
        raise ModelNotFound(f"the model {model!r} does not exist or is not served here",
                            param="model")
    if in_chain:
        chain = key.config.fallbacks
        targets += [t for t in chain if t.model == model] + [t for t in chain if t.model != model]
    route: list[Target] = []
    for target in targets:
        if key.allows_provider(target.provider) and target not in route:
            route.append(target)
    if not route:
        raise PermissionDenied(
            f"virtual key {key.id!r} may not use any provider that serves {model!r}",
            code="provider_not_allowed", param="model",
        )
    call.route = tuple(route)


def models_for_key(snapshot: Snapshot, key: KeyPolicy) -> list[tuple[str, str]]:
    """(model id, owner) pairs the key may call, for GET /v1/models."""
    candidates: dict[str, str] = {}
    for name, targets in snapshot.aliases.items():
        candidates.setdefault(name, targets[0].provider)
    for name, targets in snapshot.model_index.items():
        candidates.setdefault(name, targets[0].provider)
    for target in key.config.fallbacks:
        candidates.setdefault(target.model, target.provider)
    visible = []
    for name, owner in sorted(candidates.items()):
        if key.allowed_models is not None and name not in key.allowed_models:
            continue
        targets = list(resolve_targets(snapshot, name)) or [
            t for t in key.config.fallbacks if t.model == name
        ]
        if any(key.allows_provider(t.provider) for t in targets):
            visible.append((name, owner))
    return visible
