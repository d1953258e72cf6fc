"""The render loop: from everything the indexes hold to the gateway's config, the keys' token
Secrets and every object's status — level-based, batched, idempotent.

kopf handlers only record objects in indexes and call `request()`. This loop then waits for
the burst to end (`debounce_seconds` of quiet, at most `max_delay_seconds` after its first
change), and does one pass over the whole state:

1. token Secrets: create missing ones, rotate on the annotation, drop expired previous tokens;
2. `render()` (in a thread: 10,000 keys take a while) — skipped when no input changed;
3. write the credentials Secret, then ConfigMap parts, then delete stale parts — each only when
   it differs from what the API server holds, so unchanged input writes nothing;
4. status: conditions (merged, `observedGeneration`), keyId/providerName, configRevision —
   patched only where they differ, with a resourceVersion precondition; an Event whenever an
   object's Ready condition changes.

A failed pass is retried with backoff; the next pass recomputes everything from the indexes,
so a lost event or a crashed predecessor costs nothing but time.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.operator import kube, metrics, tokens
from tollgate.operator.conditions import (
    ConditionUpdate,
    get_condition,
    initial_conditions,
    ready_condition,
    set_condition,
)
from tollgate.operator.keys import generated_secret_name
from tollgate.operator.models import GROUP
from tollgate.operator.options import OperatorOptions
from tollgate.operator.render import (
    Rendered,
    RenderOptions,
    Report,
    config_maps,
    credentials_secret,
    gateway_name,
    render,
)
from tollgate.operator.validate import ObjectRef

__all__ = [
    "COMPONENT",
    "CONFIG_LABEL",
    "RENDERED_BY_ANNOTATION",
    "Indexes",
    "Inputs",
    "Reconciler",
    "desired_status",
    "index_resource",
    "index_secret",
    "is_indexed_secret",
]

logger = logging.getLogger(__name__)

COMPONENT = "tollgate-operator"
CONFIG_LABEL = f"{GROUP}/config"
RENDERED_BY_ANNOTATION = f"{GROUP}/rendered-by"
_KEPT_ANNOTATIONS = (tokens.ROTATE_ANNOTATION, tokens.ROTATED_FOR_ANNOTATION,
                     tokens.ROTATED_AT_ANNOTATION)
_EVENTS_PER_PASS = 50
_PARALLEL_WRITES = 16
_AWAIT_SECONDS = 5.0

Index = Mapping[Any, Iterable[Mapping[str, Any]]]
"""What kopf.Index looks like to us: key → the values the indexed objects gave."""


# --- what the indexes keep (small copies: never shared with kopf's own bodies) --------------


def _kept_metadata(metadata: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    kept = {k: copy.deepcopy(metadata[k]) for k in fields if k in metadata}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if k in _KEPT_ANNOTATIONS}
    if annotations:
        kept["annotations"] = annotations
    return kept


def index_resource(body: Mapping[str, Any]) -> dict[str, Any]:
    """A VirtualKey or ProviderCredential as the loop needs it: identity, spec, status."""
    metadata = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _kept_metadata(metadata, "name", "namespace", "uid", "generation",
                                   "resourceVersion", "deletionTimestamp"),
        "spec": copy.deepcopy(dict(body.get("spec") or {})),
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


_SKIPPED_SECRET_TYPES = frozenset({
    "kubernetes.io/service-account-token", "kubernetes.io/dockercfg",
    "kubernetes.io/dockerconfigjson", "kubernetes.io/tls", "bootstrap.kubernetes.io/token",
    "helm.sh/release.v1",
})


def is_indexed_secret(body: Mapping[str, Any]) -> bool:
    """Only Secrets that can hold an API key or a token are kept (Helm releases and TLS
    certificates are large and never referenced)."""
    return str(body.get("type") or "Opaque") not in _SKIPPED_SECRET_TYPES


def index_secret(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    kept = _kept_metadata(metadata, "name", "namespace", "uid", "resourceVersion",
                          "ownerReferences")
    return {"apiVersion": "v1", "kind": "Secret", "type": body.get("type") or "Opaque",
            "metadata": kept, "data": dict(body.get("data") or {})}


@dataclass(frozen=True)
class Indexes:
    """The three kopf indexes the loop reads, each keyed by (namespace, name)."""

    virtual_keys: Index
    provider_credentials: Index
    secrets: Index


def _values(index: Index) -> list[dict[str, Any]]:
    return [dict(value) for store in index.values() for value in store]


def _deleting(body: Mapping[str, Any]) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


class Inputs:
    """One consistent snapshot of the indexes, taken at the start of a pass."""

    def __init__(self, virtual_keys: list[dict[str, Any]],
                 provider_credentials: list[dict[str, Any]],
                 secrets: list[dict[str, Any]]) -> None:
        self.virtual_keys = virtual_keys
        self.provider_credentials = provider_credentials
        self.secrets = secrets
        self._secrets_by_name = {(b["metadata"].get("namespace"), b["metadata"].get("name")): b
                                 for b in secrets}

    @classmethod
    def of(cls, indexes: Indexes) -> Inputs:
        return cls(_values(indexes.virtual_keys), _values(indexes.provider_credentials),
                   _values(indexes.secrets))

    @property
    def live_keys(self) -> list[dict[str, Any]]:
        return [b for b in self.virtual_keys if not _deleting(b)]

    @property
    def live_credentials(self) -> list[dict[str, Any]]:
        return [b for b in self.provider_credentials if not _deleting(b)]

    def digest(self) -> str:
        """Changes exactly when the render's input does (status and versions excluded)."""
        def essences(bodies: Iterable[Mapping[str, Any]], field: str) -> list[str]:
            return sorted(json.dumps([(b.get("metadata") or {}).get("namespace"),
                                      (b.get("metadata") or {}).get("name"), b.get(field)],
                                     sort_keys=True) for b in bodies)
        document = [essences(self.live_keys, "spec"), essences(self.live_credentials, "spec"),
                    essences(self.secrets, "data")]
        return hashlib.sha256(json.dumps(document).encode()).hexdigest()

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._secrets_by_name.get((namespace, name))


# --- status (pure) ----------------------------------------------------------------------------

_NAME_FIELD = {"VirtualKey": "keyId", "ProviderCredential": "providerName"}


def desired_status(kind: str, body: Mapping[str, Any], report: Report, revision: str,
                   now: datetime) -> tuple[dict[str, Any] | None, ConditionUpdate | None]:
    """The status fields to patch (None: already right) and the Ready update to announce
    (None: Ready did not change).

    `configRevision` moves only when this object's generation or Ready condition does: it is
    the config this generation was first served in, not the latest revision (which changes
    with every other key and would rewrite every status on each change).
    """
    metadata = body["metadata"]
    generation = metadata.get("generation")
    current = body.get("status") or {}
    update = ready_condition(report)
    conditions = initial_conditions(current.get("conditions"), kind, generation, now)
    conditions = set_condition(conditions, "Ready", update.status, update.reason,
                               update.message, generation, now)
    before = get_condition(current.get("conditions"), "Ready")
    ready_changed = before is None or (before.get("status"), before.get("reason"),
                                       before.get("message")) != (update.status, update.reason,
                                                                  update.message)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions,
        _NAME_FIELD[kind]: report.gateway_name or gateway_name(metadata["namespace"],
                                                               metadata["name"]),
    }
    if ready_changed or current.get("observedGeneration") != generation:
        status["configRevision"] = revision if report.rendered else None
    patch = {k: v for k, v in status.items() if current.get(k) != v}
    return (patch or None), (update if ready_changed else None)


_StatusPatch = tuple[dict[str, Any], dict[str, Any], ConditionUpdate | None]


def _status_patches(inputs: Inputs, rendered: Rendered, now: datetime) -> list[_StatusPatch]:
    """(object, status patch, Ready update to announce) for every object whose status is not
    what the render says; runs in a worker thread (10,000 keys are a lot of conditions)."""
    bodies: dict[ObjectRef, dict[str, Any]] = {}
    for body in [*inputs.live_keys, *inputs.live_credentials]:
        metadata = body["metadata"]
        bodies[ObjectRef(str(body["kind"]), metadata["namespace"], metadata["name"])] = body
    patches: list[_StatusPatch] = []
    for ref, report in rendered.reports.items():
        found = bodies.get(ref)
        if found is None or "resourceVersion" not in found["metadata"]:
            continue
        patch, announce = desired_status(ref.kind, found, report, rendered.revision, now)
        if patch is not None:
            patches.append((found, patch, announce))
    return patches


def _ready_counts(rendered: Rendered, kind: str) -> dict[str, int]:
    """How many objects of `kind` the render reported Ready True / False."""
    counts = {"True": 0, "False": 0}
    for ref, report in rendered.reports.items():
        if ref.kind == kind:
            counts["True" if report.ready else "False"] += 1
    return counts


# --- the loop ---------------------------------------------------------------------------------


async def _bounded(awaitables: Iterable[Awaitable[None]], limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[None]) -> None:
        async with semaphore:
            await awaitable

    await asyncio.gather(*(one(a) for a in awaitables))


_Desired = tuple[kube.Kind, dict[str, Any]]
"""One object of the output (the credentials Secret or a ConfigMap part), as it should be."""


@dataclass
class _Written:
    """What the API server holds of our output, by (plural, name), as last read or written."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


class Reconciler:
    """One per operator process; runs only in the active replica."""

    def __init__(self, options: OperatorOptions, client: kube.KubeClient, identity: str,
                 indexes: Indexes) -> None:
        self.options = options
        self.identity = identity
        self._client = client
        self._indexes = indexes
        self._dirty = asyncio.Event()
        self._digest: str | None = None
        self._rendered: Rendered | None = None
        self._desired: list[_Desired] = []
        self._written: _Written | None = None
        self._served: set[tuple[str, str]] | None = None
        self._written_event = asyncio.Event()
        self._next_resync = 0.0
        self._awaited: dict[tuple[str, str], tuple[str | None, float]] = {}
        self.passes = 0
        self._parts = 0
        self.revision: str | None = None

    # -- called by handlers ---------------------------------------------------------------------

    def request(self) -> None:
        """Something changed: schedule a pass (cheap; bursts collapse into one)."""
        self._dirty.set()

    def serves(self, namespace: str, name: str) -> bool | None:
        """Whether the config last written still holds this VirtualKey (None: not known yet)."""
        if self._served is None:
            return None
        return (namespace, name) in self._served

    async def released(self, namespace: str, name: str, timeout: float) -> bool:
        """Wait (bounded) until a written config no longer holds this VirtualKey."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.serves(namespace, name) is not False:
            self.request()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter = self._written_event
            try:
                await asyncio.wait_for(waiter.wait(), timeout=remaining)
            except TimeoutError:
                return False
        return True

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Pass after pass, forever (cancelled when the operator stops)."""
        loop = asyncio.get_running_loop()
        self._next_resync = loop.time() + self.options.resync_seconds
        failures = 0
        while True:
            timeout = self._next_resync - loop.time()
            wake = self._next_token_expiry()
            if wake is not None:
                # At least half a second: an expiry that keeps failing must not spin the loop.
                due = (wake - datetime.now(UTC)).total_seconds() + 0.05
                timeout = min(timeout, max(due, 0.5))
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                pass
            if loop.time() >= self._next_resync:
                self._written = None  # re-read what we wrote: repairs edits behind our back
                self._next_resync = loop.time() + self.options.resync_seconds
            await self._debounce()
            try:
                with metrics.reconcile_pass():
                    await self.reconcile_once()
                failures = 0
            except (kube.ApiError, OSError) as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                logger.warning("render pass failed (retrying in %.1f s): %s", delay, exc)
                self._written = None
                self.request()
                await asyncio.sleep(delay)
            except Exception:
                failures += 1
                delay = min(60.0, 1.0 * 2 ** min(failures, 6))
                logger.exception("render pass failed (retrying in %.1f s)", delay)
                self.request()
                await asyncio.sleep(delay)

    async def _debounce(self) -> None:
        """Return once changes stop for `debounce_seconds`, or `max_delay_seconds` after the
        first one: a burst of 100 applies renders once, a steady trickle still renders."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.max_delay_seconds
        while True:
            self._dirty.clear()
            quiet = min(self.options.debounce_seconds, deadline - loop.time())
            if quiet <= 0:
                return
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=quiet)
            except TimeoutError:
                return

    async def reconcile_once(self) -> None:
        """One pass over the whole state (see the module docstring)."""
        self.passes += 1
        inputs = Inputs.of(self._indexes)
        await self._tokens(inputs)
        if self._awaiting(inputs):
            # Token Secrets just written are on their way into the index: render once they
            # are there, instead of announcing their keys as pending for a moment.
            self.request()
            return
        rendered, desired = await asyncio.to_thread(self._render, inputs)
        changed = await self._write_config(desired)
        metrics.objects_written(changed)
        metrics.served_revision(rendered.revision)
        self._served = {(r.obj.namespace, r.obj.name) for r in rendered.reports.values()
                        if r.obj.kind == "VirtualKey" and r.rendered}
        self._written_event.set()  # wake everyone waiting in released()
        self._written_event = asyncio.Event()
        if changed or self.revision != rendered.revision:
            what = f"wrote {changed} object(s) for" if changed else "serving (already written)"
            logger.info("%s config revision %s: %d ConfigMap part(s), %d virtual keys, "
                        "%d providers", what, rendered.revision, self._parts,
                        len(rendered.config["virtualKeys"]), len(rendered.config["providers"]))
        self.revision = rendered.revision
        await self._statuses(inputs, rendered)
        metrics.resources("VirtualKey", _ready_counts(rendered, "VirtualKey"))
        metrics.resources("ProviderCredential", _ready_counts(rendered, "ProviderCredential"))

    def _render(self, inputs: Inputs) -> tuple[Rendered, list[_Desired]]:
        """Render and shard, unless the input is what the last render saw (runs in a worker
        thread: for 10,000 keys both take long enough to stall the watches)."""
        digest = inputs.digest()
        if self._rendered is None or digest != self._digest:
            options = RenderOptions(credentials_dir=self.options.credentials_dir,
                                    shared_namespaces=self.options.credentials_namespaces,
                                    base=self.options.base)
            rendered = render(inputs.live_keys, inputs.live_credentials, inputs.secrets,
                              options)
            self._rendered, self._desired, self._digest = rendered, self._objects(rendered), \
                digest
        return self._rendered, self._desired

    def _awaiting(self, inputs: Inputs) -> bool:
        """Whether a token Secret this process wrote has yet to reach the index (bounded: an
        index that never catches up delays the render by at most `_AWAIT_SECONDS`)."""
        now = asyncio.get_running_loop().time()
        for key, (stale_version, deadline) in list(self._awaited.items()):
            secret = inputs.secret(*key)
            seen = secret is not None and secret["metadata"].get("resourceVersion") \
                != stale_version
            if seen or now >= deadline:
                del self._awaited[key]
        return bool(self._awaited)

    # -- 1. token Secrets -----------------------------------------------------------------------

    async def _tokens(self, inputs: Inputs) -> None:
        """Carry out every token step due now."""
        overlap = timedelta(seconds=self.options.rotation_overlap_seconds)
        now = datetime.now(UTC)
        actions: list[tuple[dict[str, Any], tokens.TokenAction]] = []
        for key in inputs.live_keys:
            metadata = key["metadata"]
            if "uid" not in metadata:
                continue
            secret = inputs.secret(metadata["namespace"], generated_secret_name(metadata["name"]))
            action = tokens.plan(key, secret, kube.owner_reference(key), now, overlap)
            if action is not None:
                actions.append((key, action))
        await _bounded((self._token_step(k, a, inputs) for k, a in actions), _PARALLEL_WRITES)

    async def _token_step(self, key: dict[str, Any], action: tokens.TokenAction,
                          inputs: Inputs) -> None:
        client = self._client
        if isinstance(action, tokens.CreateSecret):
            where = (action.body["metadata"]["namespace"], action.body["metadata"]["name"])
        else:
            where = (action.namespace, action.name)
        if where in self._awaited:
            return  # written a moment ago; the index has not caught up yet
        stale = inputs.secret(*where)
        stale_version = stale["metadata"].get("resourceVersion") if stale else None
        try:
            if isinstance(action, tokens.CreateSecret):
                await client.create(kube.SECRETS, action.body)
                reason, message = "KeySecretCreated", (
                    f"Generated a bearer token into Secret {where[1]!r} (entry 'token'); the "
                    "gateway sees only its SHA-256.")
            elif isinstance(action, tokens.RotateSecret):
                await client.patch(kube.SECRETS, action.namespace, action.name, action.patch)
                minutes = self.options.rotation_overlap_seconds / 60
                reason, message = "TokenRotated", (
                    f"Rotated the token in Secret {action.name!r}; the previous token keeps "
                    f"working for {minutes:g} more minutes.")
            else:
                await client.patch(kube.SECRETS, action.namespace, action.name, action.patch)
                reason, message = "PreviousTokenExpired", (
                    f"The overlap window ended: the previous token in Secret {action.name!r} "
                    "no longer works.")
        except (kube.Conflict, kube.NotFound):
            self.request()  # the Secret changed under us; decide again from the fresh index
            return
        self._awaited[where] = (stale_version, asyncio.get_running_loop().time() + _AWAIT_SECONDS)
        await self._event(key, "Normal", reason, message)

    def _next_token_expiry(self) -> datetime | None:
        overlap = timedelta(seconds=self.options.rotation_overlap_seconds)
        found = [expiry for secret in _values(self._indexes.secrets)
                 if tokens.ROTATED_AT_ANNOTATION in (secret["metadata"].get("annotations") or {})
                 and (expiry := tokens.previous_token_expiry(secret, overlap)) is not None]
        return min(found) if found else None

    # -- 3. the config ---------------------------------------------------------------------------

    def _objects(self, rendered: Rendered) -> list[_Desired]:
        options = self.options
        secret = credentials_secret(rendered, options.credentials_secret_name,
                                    options.target_namespace)
        parts = config_maps(rendered.config, options.config_name, options.target_namespace)
        return [(kube.SECRETS, secret), *((kube.CONFIG_MAPS, part) for part in parts)]

    async def _read_written(self) -> _Written:
        options, written = self.options, _Written()
        parts = await self._client.list(kube.CONFIG_MAPS, options.target_namespace,
                                        label_selector=f"{CONFIG_LABEL}={options.config_name}")
        for body in parts:
            labels = (body.get("metadata") or {}).get("labels") or {}
            if labels.get(CONFIG_LABEL) == options.config_name:
                written.objects[("configmaps", body["metadata"]["name"])] = body
        secret = await self._client.get(kube.SECRETS, options.target_namespace,
                                        options.credentials_secret_name)
        if secret is not None:
            written.objects[("secrets", options.credentials_secret_name)] = secret
        return written

    async def _write_config(self, desired: list[_Desired]) -> int:
        """Secret first (a new provider's key file exists before config names it), then the
        parts in order, then stale parts; each only if it differs. Returns the write count."""
        if self._written is None:
            self._written = await self._read_written()
        written = self._written.objects
        changed = 0
        try:
            for kind, body in desired:
                key = (kind.plural, body["metadata"]["name"])
                current = written.get(key)
                if not kube.needs_write(body, current):
                    continue
                metadata = body["metadata"]
                signed = {**body, "metadata": {**metadata, "annotations": {
                    **(metadata.get("annotations") or {}), RENDERED_BY_ANNOTATION: self.identity}}}
                result = await kube.apply(self._client, kind, signed, current)
                if result is not None:
                    written[key] = result
                    changed += 1
            wanted = {("configmaps", body["metadata"]["name"]) for _, body in desired}
            for key in [k for k in written if k[0] == "configmaps" and k not in wanted]:
                await self._client.delete(kube.CONFIG_MAPS, self.options.target_namespace, key[1])
                del written[key]
                changed += 1
        except kube.ApiError:
            self._written = None
            raise
        self._parts = len(desired) - 1
        return changed

    # -- 4. status -------------------------------------------------------------------------------

    async def _statuses(self, inputs: Inputs, rendered: Rendered) -> None:
        patches = await asyncio.to_thread(_status_patches, inputs, rendered, datetime.now(UTC))
        events: list[tuple[dict[str, Any], ConditionUpdate]] = []

        async def one(body: dict[str, Any], patch: dict[str, Any],
                      announce: ConditionUpdate | None) -> None:
            kind = kube.VIRTUAL_KEYS if body["kind"] == "VirtualKey" else \
                kube.PROVIDER_CREDENTIALS
            result = await kube.patch_status(self._client, kind, body, patch)
            if result is not None and announce is not None:
                events.append((result, announce))

        await _bounded((one(*p) for p in patches), _PARALLEL_WRITES)
        for body, update in events[:_EVENTS_PER_PASS]:
            await self._event(body, "Normal" if update.status == "True" else "Warning",
                              update.reason, update.message)
        if len(events) > _EVENTS_PER_PASS:
            logger.info("%d more Ready changes this pass; their Events are not posted",
                        len(events) - _EVENTS_PER_PASS)

    async def _event(self, body: Mapping[str, Any], type_: str, reason: str,
                     message: str) -> None:
        await kube.post_event(self._client, body, type_=type_, reason=reason, message=message,
                              component=COMPONENT, instance=self.identity)
