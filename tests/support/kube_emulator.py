"""kmock's Kubernetes emulator, completed where kopf and kubectl need a real API server.

Vanilla kmock 0.8 keeps objects and serves discovery, but kopf and kubectl trip over 14 gaps
(../shared/TESTING.md). This subclass keeps kmock's HTTP server, discovery scaffold, resource
registry and object store (`emulator.objects`), and serves the object API itself:

 1. `/api/v1/namespaces[/NAME]` is parsed here (kmock's URL parser fails on it).
 2. Objects get `uid`, `resourceVersion`, `creationTimestamp` (and `generation` for custom
    resources, bumped on spec changes), so kopf's JSON-patch `test` ops and owner refs work.
 3. LIST answers carry `kind: <Kind>List` and `apiVersion`.
 4. `/api/v1` discovery says `groupVersion: v1`.
 5. `generateName` gives a random suffix.
 6. CREATE answers 201.
 7. `?watch=true|True|1` are all watches.
 8. PUT replaces (with resourceVersion preconditions), as PATCH does with merge and JSON patches.
 9. Watch streams are `application/json`.
10. `sendInitialEvents=true` ends its initial events with the `k8s.io/initial-events-end`
    BOOKMARK kubectl ≥ 1.35 waits for; `allowWatchBookmarks` gets periodic bookmarks.
11. Namespaces are objects; `preload_namespace()` creates them (and namespaced writes into a
    missing namespace fail as on a real server).
12. Watches honour `?resourceVersion=`: events are kept in a log and replayed, or 410 Gone.
13. Discovery lists shortNames/categories on the main resource only, never on `x/status`.
14. Error reasons are the API's own (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, …).

Also: posting a CustomResourceDefinition registers its resource (with printer columns, so
`kubectl get` receives server-side Tables); equality label and field selectors; finalizers and
the status subresource behave as on a real server. Still not emulated: schema/CEL validation,
server-side apply, strategic merge (treated as a JSON merge patch), garbage collection.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import datetime
import json
import random
import re
import string
import sys
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiohttp.web
import attrs
import jsonpatch
import kmock

__all__ = ["ALL_VERBS", "KubeEmulator", "Target"]

ALL_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
_LOG_SIZE = 20_000
_BOOKMARK_SECONDS = 20.0
_HISTORY_KEPT = 4


@dataclass(frozen=True)
class Target:
    """What an object-API URL addresses."""

    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def parse_target(path: str) -> Target | None:
    """An object-API path (`/api/v1/...`, `/apis/G/V/...`), or None for discovery and the rest."""
    segments = [s for s in path.split("/") if s]
    if len(segments) >= 3 and segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    elif len(segments) >= 4 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        return None
    namespace: str | None = None
    is_namespace_itself = group == "" and rest[0] == "namespaces" and (
        len(rest) <= 2 or (len(rest) == 3 and rest[2] in ("status", "finalize")))
    if rest[0] == "namespaces" and not is_namespace_itself:
        namespace, rest = rest[1], rest[2:]
        if not rest:
            return None
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return Target(group, version, plural, namespace, name, subresource)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime | None = None) -> str:
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, reason: str, message: str,
           details: Mapping[str, Any] | None = None) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message,
                                 details=dict(details or {}))


def _secret_data(body: dict[str, Any]) -> None:
    """A Secret's `stringData` is write-only: the API server folds it into base64 `data`."""
    if body.get("kind") == "Secret" and isinstance(body.get("stringData"), Mapping):
        data = dict(body.get("data") or {})
        for key, value in body.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        body["data"] = data


def _not_found(target: Target, name: str | None = None) -> kmock.KubernetesError:
    name = name or target.name or ""
    return _error(404, "NotFound", f'{target.qualified} "{name}" not found',
                  {"name": name, "group": target.group, "kind": target.plural})


def merge_patch(base: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, `null` deletes, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(base) if isinstance(base, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _selector_terms(text: str | None) -> list[tuple[str, str, str | None]]:
    """`a=b,c!=d,e,!f` → [(key, op, value)]; only the equality forms kopf and kubectl send."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in (text or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key.strip(), "!=", value.strip()))
        elif "=" in term:
            key, value = term.split("=", 1)
            terms.append((key.strip(), "=", value.lstrip("=").strip()))
        elif term.startswith("!"):
            terms.append((term[1:].strip(), "!", None))
        else:
            terms.append((term, "exists", None))
    return terms


def _dig(body: Mapping[str, Any], dotted: str) -> Any:
    value: Any = body
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _matches(body: Mapping[str, Any], labels: str | None, fields: str | None) -> bool:
    own = (body.get("metadata") or {}).get("labels") or {}
    for key, op, value in _selector_terms(labels):
        if (op == "=" and own.get(key) != value) or (op == "!=" and own.get(key) == value) \
                or (op == "exists" and key not in own) or (op == "!" and key in own):
            return False
    for key, op, value in _selector_terms(fields):
        actual = _dig(body, key)
        actual = "" if actual is None else str(actual)
        if (op == "=" and actual != value) or (op == "!=" and actual == value):
            return False
    return True


# --- server-side printing (the Table kubectl asks for) ---------------------------------------

_FILTER = re.compile(r'^\?\(@\.([\w.]+)\s*==\s*["\']([^"\']*)["\']\)$')


def jsonpath(body: Any, path: str) -> list[Any]:
    """The subset of kubectl's JSONPath that printer columns use: `.a.b`, `[N]`, `[?(@.k=="v")]`."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    tokens = re.findall(r"\.([^.\[\]]+)|\[([^\]]*)\]", path)
    current: list[Any] = [body]
    for field, bracket in tokens:
        following: list[Any] = []
        for value in current:
            if field:
                if isinstance(value, Mapping) and field in value:
                    following.append(value[field])
            elif isinstance(value, list):
                condition = _FILTER.match(bracket)
                if condition:
                    key, expected = condition.groups()
                    following.extend(item for item in value if isinstance(item, Mapping)
                                     and str(_dig(item, key)) == expected)
                elif bracket == "*":
                    following.extend(value)
                elif re.fullmatch(r"-?\d+", bracket) and -len(value) <= int(bracket) < len(value):
                    following.append(value[int(bracket)])
        current = following
    return current


def _age(timestamp: Any) -> str:
    try:
        then = datetime.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = max(0, int((_now() - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= 60):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cell(body: Mapping[str, Any], column: Mapping[str, Any]) -> Any:
    found = jsonpath(body, str(column.get("jsonPath", "")))
    if not found:
        return None
    value = found[0]
    if column.get("type") == "date":
        return _age(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _wants_table(accept: str) -> bool:
    return "as=Table" in accept


# --- the emulator ----------------------------------------------------------------------------


@dataclass
class _Event:
    rv: int
    resource: kmock.resource
    namespace: str | None
    type: str
    body: dict[str, Any]


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """A stateful API server for kopf and kubectl, over kmock's HTTP server and object store."""

    log_size: int = _LOG_SIZE
    """How many write events are kept for watches resuming from a resourceVersion."""
    _rv: int = attrs.field(default=0, init=False)
    _log: collections.deque[_Event] = attrs.field(init=False)
    _log_floor: int = attrs.field(default=0, init=False)
    _wakeup: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _printers: dict[kmock.resource, list[dict[str, Any]]] = attrs.field(factory=dict, init=False)
    on_write: Callable[[str, Target, dict[str, Any]], None] | None = None
    """Called after every stored write (verb, target, body): the launcher logs them."""

    @_log.default
    def _new_log(self) -> collections.deque[_Event]:
        return collections.deque(maxlen=self.log_size)

    # -- declarations --------------------------------------------------------------------------

    def declare(self, api_version: str, plural: str, kind: str, *, namespaced: bool = True,
                singular: str | None = None, shortnames: Iterable[str] = (),
                categories: Iterable[str] = (), status: bool = False,
                printer_columns: Iterable[Mapping[str, Any]] = ()) -> None:
        """Make a resource discoverable and servable (a built-in kind, or a CRD's version)."""
        group, _, version = api_version.rpartition("/")
        resource = kmock.resource(group, version, plural)
        self.resources[resource] = kmock.ResourceInfo(
            namespaced=namespaced, kind=kind, singular=singular or kind.lower(),
            verbs=set(ALL_VERBS), shortnames=set(shortnames), categories=set(categories),
            subresources={"status"} if status else set(),
        )
        columns = list(printer_columns)
        if columns:
            self._printers[resource] = [dict(c) for c in columns]

    def declare_builtins(self) -> None:
        """The built-in kinds the operator, kopf and kubectl touch."""
        self.declare("v1", "namespaces", "Namespace", namespaced=False, shortnames=["ns"])
        self.declare("v1", "configmaps", "ConfigMap", shortnames=["cm"])
        self.declare("v1", "secrets", "Secret")
        self.declare("v1", "events", "Event", shortnames=["ev"])
        self.declare("events.k8s.io/v1", "events", "Event", shortnames=["ev"])
        self.declare("coordination.k8s.io/v1", "leases", "Lease")
        self.declare("apiextensions.k8s.io/v1", "customresourcedefinitions",
                     "CustomResourceDefinition", namespaced=False, shortnames=["crd", "crds"],
                     status=True)

    def declare_crd(self, crd: Mapping[str, Any]) -> None:
        """Serve every version of a CustomResourceDefinition, as the API server does once the
        CRD is established (kmock's own emulator ignores posted CRDs)."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or ():
            if not version.get("served", True):
                continue
            self.declare(
                f"{spec['group']}/{version['name']}", names["plural"], names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular"), shortnames=names.get("shortNames") or (),
                categories=names.get("categories") or (),
                status="status" in (version.get("subresources") or {}),
                printer_columns=version.get("additionalPrinterColumns") or (),
            )

    def declared(self) -> list[tuple[kmock.resource, kmock.ResourceInfo]]:
        """Every declared resource with its info (ResourcesArray yields parsed keys)."""
        return [(cast(kmock.resource, res), self.resources[res]) for res in list(self.resources)]

    def preload(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as if it had been created (before the server starts serving)."""
        api_version, kind = str(body["apiVersion"]), str(body["kind"])
        for resource, info in self.declared():
            resource_api = f"{resource.group}/{resource.version}" if resource.group \
                else str(resource.version)
            if resource_api == api_version and info.kind == kind:
                metadata = body.get("metadata") or {}
                target = Target(str(resource.group), str(resource.version),
                                str(resource.plural),
                                metadata.get("namespace") if info.namespaced else None,
                                None, None)
                return self._create(target, info, dict(body))
        raise KeyError(f"undeclared kind {api_version} {kind}")

    def preload_namespace(self, name: str) -> None:
        self.preload({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # -- discovery fixes (gaps 4 and 13) ------------------------------------------------------

    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        return {"major": "1", "minor": "37", "gitVersion": "v1.37.0-kmock",
                "platform": "linux/amd64"}

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        assert request.resource is not None
        group, version = request.resource.group, request.resource.version
        served = [(res, info) for res, info in self.declared()
                  if res.group == group and res.version == version]
        if not served and group != "":
            raise _error(404, "NotFound", "the server could not find the requested resource")
        entries: list[dict[str, Any]] = []
        for res, info in sorted(served, key=lambda pair: str(pair[0].plural)):
            entries.append({
                "name": res.plural, "singularName": info.singular or "",
                "namespaced": bool(info.namespaced), "kind": info.kind,
                "verbs": sorted(info.verbs), "shortNames": sorted(info.shortnames),
                "categories": sorted(info.categories),
            })
            for sub in sorted(info.subresources):
                entries.append({"name": f"{res.plural}/{sub}", "singularName": "",
                                "namespaced": bool(info.namespaced), "kind": info.kind,
                                "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else str(version),
                "resources": entries}

    # -- the object API -----------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        target = parse_target(raw_request.path)
        if target is None:
            return await super().__call__(raw_request)
        await raw_request.read()
        try:
            return await self._serve(raw_request, target)
        except kmock.KubernetesError as exc:
            return await self._render_error(exc)
        except Exception as exc:  # a bug here must reach the test log, not vanish into a 500
            traceback.print_exc(file=sys.stderr)
            return await self._render_error(_error(500, "InternalError", repr(exc)))

    async def _serve(self, request: aiohttp.web.BaseRequest, target: Target
                     ) -> aiohttp.web.StreamResponse:
        if target.resource not in self.resources:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        info = self.resources[target.resource]
        if not info.namespaced and target.namespace is not None:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        if target.subresource and target.subresource not in info.subresources:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        query = request.query
        method = request.method
        if method == "GET" and query.get("watch", "").lower() in ("true", "1"):
            return await self._watch(request, target, info)
        if method == "GET" and target.name is None:
            return self._respond(request, target, self._list(target, info, query), list_=True)
        if method == "GET":
            return self._respond(request, target, self._fetch(target))
        body = await self._body(request)
        if method == "POST" and target.name is None:
            created = self._create(target, info, body)
            return aiohttp.web.json_response(created, status=201)
        if target.name is None:
            raise _error(405, "MethodNotAllowed", f"{method} is not supported on collections")
        if method == "PUT":
            return aiohttp.web.json_response(self._update(target, info, body, replace=True))
        if method == "PATCH":
            kind = request.content_type
            return aiohttp.web.json_response(self._patch(target, info, body, kind))
        if method == "DELETE":
            return aiohttp.web.json_response(self._delete(target))
        raise _error(405, "MethodNotAllowed", f"{method} is not supported")

    async def _body(self, request: aiohttp.web.BaseRequest) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        if request.content_type == "application/apply-patch+yaml":
            raise _error(415, "UnsupportedMediaType",
                         "server-side apply is not emulated; use client-side `kubectl apply`")
        try:
            return json.loads(raw)
        except ValueError:
            raise _error(415, "UnsupportedMediaType",
                         "only JSON bodies are emulated (no protobuf)") from None

    def _respond(self, request: aiohttp.web.BaseRequest, target: Target, payload: Any,
                 list_: bool = False) -> aiohttp.web.StreamResponse:
        columns = self._printers.get(target.resource)
        if columns is not None and _wants_table(request.headers.get("Accept", "")):
            items = payload["items"] if list_ else [payload]
            return aiohttp.web.json_response(self._table(columns, items, str(self._rv)))
        return aiohttp.web.json_response(payload)

    def _table(self, columns: list[dict[str, Any]], items: list[dict[str, Any]],
               resource_version: str) -> dict[str, Any]:
        definitions = [{"name": "Name", "type": "string", "format": "name",
                        "description": "Name of the object", "priority": 0}]
        for column in columns:
            definitions.append({"name": column["name"], "type": column.get("type", "string"),
                                "format": column.get("format", ""),
                                "description": column.get("description", ""),
                                "priority": int(column.get("priority", 0))})
        rows = [{
            "cells": [item["metadata"]["name"], *(_cell(item, c) for c in columns)],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": item["metadata"]},
        } for item in items]
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": resource_version},
                "columnDefinitions": definitions, "rows": rows}

    # -- storage helpers ----------------------------------------------------------------------

    def _key(self, target: Target, name: str | None = None
             ) -> tuple[kmock.resource, str | None, str]:
        return (target.resource, target.namespace, name or target.name or "")

    def _current(self, target: Target) -> dict[str, Any] | None:
        key = self._key(target)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def _store(self, key: tuple[kmock.resource, str | None, str], body: dict[str, Any]) -> None:
        if key in self.objects:
            stored = self.objects[key]
            stored.create(body)
            if len(stored.history) > _HISTORY_KEPT:
                del stored.history[:-_HISTORY_KEPT]
        else:
            self.objects[key] = body

    def _emit(self, target: Target, type_: str, body: dict[str, Any], verb: str) -> None:
        if self._log.maxlen is not None and len(self._log) == self._log.maxlen:
            self._log_floor = self._log[0].rv
        self._log.append(_Event(self._rv, target.resource, target.namespace, type_,
                                copy.deepcopy(body)))
        if self.on_write is not None:
            self.on_write(verb, target, body)
        # Wake every watcher waiting on the current event; later waiters get a fresh one.
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _bump(self, body: dict[str, Any]) -> None:
        self._rv += 1
        body.setdefault("metadata", {})["resourceVersion"] = str(self._rv)

    def _finish_deletion(self, target: Target, body: dict[str, Any]) -> bool:
        """An object marked for deletion goes once its last finalizer is removed."""
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            self.objects[self._key(target, metadata.get("name"))].delete()
            self._emit(target, "DELETED", body, "delete")
            return True
        return False

    # -- verbs --------------------------------------------------------------------------------

    def _list(self, target: Target, info: kmock.ResourceInfo, query: Mapping[str, str]
              ) -> dict[str, Any]:
        items = [obj.raw for (res, ns, _), obj in self.objects.items()
                 if res == target.resource and not obj.deleted
                 and (target.namespace is None or ns == target.namespace)
                 and _matches(obj.raw, query.get("labelSelector"), query.get("fieldSelector"))]
        items.sort(key=lambda b: (b["metadata"].get("namespace", ""), b["metadata"]["name"]))
        return {"kind": f"{info.kind}List", "apiVersion": target.api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _fetch(self, target: Target) -> dict[str, Any]:
        current = self._current(target)
        if current is None:
            raise _not_found(target)
        return current

    def _create(self, target: Target, info: kmock.ResourceInfo, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _error(400, "BadRequest", "the body must be a JSON object")
        body = copy.deepcopy(body)
        metadata = body.setdefault("metadata", {})
        if target.namespace is not None:
            if metadata.get("namespace", target.namespace) != target.namespace:
                raise _error(400, "BadRequest", "the namespace of the provided object does not "
                                                "match the namespace sent on the request")
            metadata["namespace"] = target.namespace
            namespace_key = (kmock.resource("", "v1", "namespaces"), None, target.namespace)
            if namespace_key not in self.objects or self.objects[namespace_key].deleted:
                raise _error(404, "NotFound", f'namespaces "{target.namespace}" not found',
                             {"name": target.namespace, "kind": "namespaces"})
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            metadata["name"] = f"{metadata['generateName']}{suffix}"
        name = metadata.get("name")
        if not name:
            raise _error(422, "Invalid", f"{info.kind} is invalid: metadata.name: Required value",
                         {"kind": info.kind, "causes": [{"field": "metadata.name",
                                                         "reason": "FieldValueRequired"}]})
        key = self._key(target, name)
        if key in self.objects and not self.objects[key].deleted:
            raise _error(409, "AlreadyExists", f'{target.qualified} "{name}" already exists',
                         {"name": name, "group": target.group, "kind": target.plural})
        body["apiVersion"], body["kind"] = target.api_version, info.kind
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = _timestamp()
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion",
                          "managedFields"):
            metadata.pop(transient, None)
        if "status" in info.subresources:
            metadata["generation"] = 1
            body.pop("status", None)
        if target.resource == kmock.resource("", "v1", "namespaces"):
            body["status"] = {"phase": "Active"}
        _secret_data(body)
        self._bump(body)
        self._store(key, body)
        if target.resource == kmock.resource("apiextensions.k8s.io", "v1",
                                             "customresourcedefinitions"):
            self.declare_crd(body)
        self._emit(target, "ADDED", body, "create")
        return copy.deepcopy(body)

    def _update(self, target: Target, info: kmock.ResourceInfo, proposed: Any,
                replace: bool) -> dict[str, Any]:
        """Store `proposed` as the object's next state, as PUT and PATCH both end up doing."""
        current = self._current(target)
        if current is None:
            raise _not_found(target)
        if not isinstance(proposed, dict):
            raise _error(400, "BadRequest", "the body must be a JSON object")
        proposed = copy.deepcopy(proposed)
        metadata = proposed.setdefault("metadata", {})
        wanted_rv = metadata.get("resourceVersion")
        if wanted_rv not in (None, "") and wanted_rv != current["metadata"]["resourceVersion"]:
            raise _error(409, "Conflict", f'Operation cannot be fulfilled on {target.qualified} '
                         f'"{target.name}": the object has been modified; please apply your '
                         "changes to the latest version and try again",
                         {"name": target.name, "group": target.group, "kind": target.plural})
        if metadata.get("name", target.name) != target.name:
            raise _error(400, "BadRequest", "the name of the object does not match the URL")
        for kept in ("name", "namespace", "uid", "creationTimestamp", "generation",
                     "deletionTimestamp", "deletionGracePeriodSeconds"):
            if kept in current["metadata"]:
                metadata[kept] = current["metadata"][kept]
            else:
                metadata.pop(kept, None)
        proposed["apiVersion"], proposed["kind"] = current["apiVersion"], current["kind"]
        _secret_data(proposed)
        if current["metadata"].get("deletionTimestamp"):
            # Finalizers may only be removed from an object being deleted, never added.
            old = set(current["metadata"].get("finalizers") or ())
            metadata["finalizers"] = [f for f in metadata.get("finalizers") or () if f in old]
            if not metadata["finalizers"]:
                del metadata["finalizers"]
        has_status = "status" in info.subresources
        if target.subresource == "status":
            updated = {k: v for k, v in current.items() if k != "status"}
            updated["metadata"] = current["metadata"]
            if "status" in proposed:
                updated["status"] = proposed["status"]
        else:
            updated = proposed
            if has_status:
                updated.pop("status", None)
                if "status" in current:
                    updated["status"] = current["status"]
        if has_status and target.subresource != "status":
            spec_before = {k: v for k, v in current.items() if k not in ("metadata", "status")}
            spec_after = {k: v for k, v in updated.items() if k not in ("metadata", "status")}
            if spec_before != spec_after:
                updated["metadata"]["generation"] = int(current["metadata"].get("generation",
                                                                               1)) + 1
        comparable = copy.deepcopy(updated)
        comparable["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if comparable == current:
            return current  # a no-op write changes nothing and notifies no one
        self._bump(updated)
        self._store(self._key(target), updated)
        if not self._finish_deletion(target, updated):
            self._emit(target, "MODIFIED", updated, "replace" if replace else "patch")
        return copy.deepcopy(updated)

    def _patch(self, target: Target, info: kmock.ResourceInfo, patch: Any,
               content_type: str) -> dict[str, Any]:
        current = self._current(target)
        if current is None:
            raise _not_found(target)
        if content_type == "application/json-patch+json":
            try:
                patched = jsonpatch.apply_patch(current, patch, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise _error(422, "Invalid", f"the JSON patch could not be applied: {exc}",
                             {"name": target.name, "kind": target.plural}) from None
        elif content_type in ("application/merge-patch+json",
                              "application/strategic-merge-patch+json"):
            if not isinstance(patch, Mapping):
                raise _error(400, "BadRequest", "a merge patch must be a JSON object")
            patched = merge_patch(current, patch)
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            patched.setdefault("metadata", {})["resourceVersion"] = (
                wanted if wanted else current["metadata"]["resourceVersion"])
        else:
            raise _error(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")
        return self._update(target, info, patched, replace=False)

    def _delete(self, target: Target) -> dict[str, Any]:
        current = self._current(target)
        if current is None:
            raise _not_found(target)
        metadata = current["metadata"]
        if metadata.get("finalizers"):
            if not metadata.get("deletionTimestamp"):
                metadata["deletionTimestamp"] = _timestamp()
                metadata["deletionGracePeriodSeconds"] = 0
                self._bump(current)
                self._store(self._key(target), current)
                self._emit(target, "MODIFIED", current, "delete")
            return current
        self._bump(current)
        self.objects[self._key(target)].delete()
        self._emit(target, "DELETED", current, "delete")
        return current

    # -- watches (gaps 7, 9, 10, 12) -----------------------------------------------------------

    async def _watch(self, request: aiohttp.web.BaseRequest, target: Target,
                     info: kmock.ResourceInfo) -> aiohttp.web.StreamResponse:
        query = request.query
        labels, fields = query.get("labelSelector"), query.get("fieldSelector")
        if target.name is not None:
            fields = ",".join(filter(None, [fields, f"metadata.name={target.name}"]))
        since = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents", "").lower() == "true"
        bookmarks = query.get("allowWatchBookmarks", "").lower() == "true"
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None

        response = aiohttp.web.StreamResponse(
            status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(type_: str, body: Mapping[str, Any]) -> None:
            await response.write(json.dumps({"type": type_, "object": body}).encode() + b"\n")

        def bookmark(end_of_initial: bool = False) -> dict[str, Any]:
            metadata: dict[str, Any] = {"resourceVersion": str(self._rv)}
            if end_of_initial:
                metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
            return {"kind": info.kind, "apiVersion": target.api_version, "metadata": metadata}

        list_target = Target(target.group, target.version, target.plural, target.namespace,
                             None, None)
        try:
            if initial or since in ("", "0"):
                position = self._rv
                for body in self._list(list_target, info, {})["items"]:
                    if _matches(body, labels, fields):
                        await send("ADDED", body)
                if initial:
                    await send("BOOKMARK", bookmark(end_of_initial=True))
            else:
                position = int(since)
                if position < self._log_floor:
                    await send("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                         "status": "Failure", "reason": "Expired", "code": 410,
                                         "message": f"too old resource version: {since}"})
                    return response
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout is not None else None
            next_bookmark = loop.time() + _BOOKMARK_SECONDS
            while True:
                waiter = self._wakeup  # taken before the scan: a write during it wakes us
                for event in [e for e in self._log if e.rv > position]:
                    position = event.rv
                    if event.resource == target.resource and (
                            target.namespace is None or event.namespace == target.namespace
                    ) and _matches(event.body, labels, fields):
                        await send(event.type, event.body)
                now = loop.time()
                if deadline is not None and now >= deadline:
                    return response
                if bookmarks and now >= next_bookmark:
                    await send("BOOKMARK", bookmark())
                    next_bookmark = now + _BOOKMARK_SECONDS
                transport = request.transport
                if transport is None or transport.is_closing():
                    return response
                wait = min(2.0, next_bookmark - now,
                           deadline - now if deadline is not None else 2.0)
                try:
                    await asyncio.wait_for(waiter.wait(), timeout=max(0.01, wait))
                except TimeoutError:
                    pass
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            return response
