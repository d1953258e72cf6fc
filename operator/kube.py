"""The only module that calls the Kubernetes API server.

kopf watches and patches the custom resources it handles; everything else the operator writes
goes through here: the rendered ConfigMaps and credentials Secret, token Secrets, status
conditions, Events and the leader Lease. One small aiohttp client, authenticated the way kopf
authenticates (in-cluster service account, else kubeconfig), so the operator needs no second
Kubernetes client library.

Errors are translated once, at this boundary (STYLE pattern 2): callers only ever see
`ApiError` and its subclasses, never an aiohttp exception.

Writes are create-or-replace with resourceVersion preconditions (optimistic concurrency), not
server-side apply: the test API server (kmock) does not emulate apply, and the objects written
here are wholly owned by the operator anyway. Each write first compares with what is there, so
re-rendering unchanged input writes nothing.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf

from tollgate.operator.models import API_VERSION

__all__ = [
    "CONFIG_MAPS",
    "EVENTS",
    "LEASES",
    "MERGE_PATCH",
    "PROVIDER_CREDENTIALS",
    "SECRETS",
    "VIRTUAL_KEYS",
    "ApiError",
    "Conflict",
    "KubeClient",
    "Kind",
    "NotFound",
    "Unreachable",
    "apply",
    "needs_write",
    "owner_reference",
    "patch_status",
    "post_event",
]

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"


# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """The API server refused a request (or could not be reached: `Unreachable`)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class Conflict(ApiError):
    """409: the object already exists, or changed since the resourceVersion we sent."""


class Unreachable(ApiError):
    """No answer: connection refused, reset or timed out."""


_ERRORS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict}


# --- kinds and paths ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A resource the operator touches, and how its URLs are formed."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        root = f"/apis/{self.api_version}" if "/" in self.api_version else "/api/v1"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


CONFIG_MAPS = Kind("v1", "ConfigMap", "configmaps")
SECRETS = Kind("v1", "Secret", "secrets")
EVENTS = Kind("v1", "Event", "events")
LEASES = Kind("coordination.k8s.io/v1", "Lease", "leases")
VIRTUAL_KEYS = Kind(API_VERSION, "VirtualKey", "virtualkeys")
PROVIDER_CREDENTIALS = Kind(API_VERSION, "ProviderCredential", "providercredentials")


# --- the client -----------------------------------------------------------------------------


def _login() -> kopf.ConnectionInfo:
    """Credentials the way kopf finds them without a client library: the pod's service account,
    else the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or \
        kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig: cannot reach the "
                              "Kubernetes API")
    return info


def _decoded(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | None:
    if not info.server.startswith("https://"):
        return None
    context = ssl.create_default_context(cafile=os.fspath(info.ca_path) if info.ca_path else None)
    if info.ca_data:
        context.load_verify_locations(cadata=_decoded(info.ca_data).decode())
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data or info.private_key_data:
        # ssl loads client certificates only from files: write them briefly, private to us.
        with tempfile.TemporaryDirectory() as tmp:
            if info.certificate_data:
                cert = os.path.join(tmp, "client.crt")
                with open(os.open(cert, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
                    out.write(_decoded(info.certificate_data))
            if info.private_key_data:
                key = os.path.join(tmp, "client.key")
                with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
                    out.write(_decoded(info.private_key_data))
            if cert:
                context.load_cert_chain(os.fspath(cert), os.fspath(key) if key else None)
    elif cert:
        context.load_cert_chain(os.fspath(cert), os.fspath(key) if key else None)
    return context


class KubeClient:
    """A thin JSON client for the API server: one aiohttp session, errors as `ApiError`."""

    def __init__(self, info: kopf.ConnectionInfo,
                 timeout: aiohttp.ClientTimeout | None = None) -> None:
        self._info = info
        self._timeout = timeout or aiohttp.ClientTimeout(total=30, sock_connect=5)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    async def connect(cls) -> KubeClient:
        return cls(_login())

    @property
    def server(self) -> str:
        return self._info.server.rstrip("/")

    @property
    def default_namespace(self) -> str | None:
        return self._info.default_namespace

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self._info) or False, limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout,
                headers={"User-Agent": "tollgate-operator", **self._info.as_http_headers()})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        """One call; on 401 the credentials are read again once (rotated service account
        tokens), then any failure becomes an `ApiError`."""
        for attempt in (1, 2):
            try:
                async with self._open().request(
                    method, self.server + path, params=params, json=body,
                    headers={"Content-Type": content_type} if body is not None else None,
                ) as response:
                    if response.status == 401 and attempt == 1:
                        await self.close()
                        self._info = _login()
                        continue
                    try:
                        payload = await response.json(content_type=None) \
                            if response.content_length != 0 else None
                    except ValueError:  # a proxy's HTML page, a truncated body
                        payload = None
                        if response.status < 400:
                            raise ApiError(response.status, "InvalidResponse",
                                           f"{method} {path}: the answer is not JSON") from None
                    if response.status >= 400:
                        raise _error(response.status, payload)
                    return payload
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Unreachable(0, type(exc).__name__,
                                  f"{method} {path}: {exc or type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # One method per verb; `None` from get() means "not found" (no exception for the common case).

    async def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return dict(await self.request("GET", kind.path(namespace, name)))
        except NotFound:
            return None

    async def list(self, kind: Kind, namespace: str | None = None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", kind.path(namespace), params=params)
        return list(result.get("items") or [])

    async def create(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = (body.get("metadata") or {}).get("namespace")
        return dict(await self.request("POST", kind.path(namespace), body=body))

    async def replace(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        metadata = body.get("metadata") or {}
        path = kind.path(metadata.get("namespace"), metadata["name"])
        return dict(await self.request("PUT", path, body=body))

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    subresource: str | None = None,
                    content_type: str = MERGE_PATCH) -> dict[str, Any]:
        path = kind.path(namespace, name, subresource)
        return dict(await self.request("PATCH", path, body=patch, content_type=content_type))

    async def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        try:
            await self.request("DELETE", kind.path(namespace, name))
            return True
        except NotFound:
            return False


def _error(status: int, payload: Any) -> ApiError:
    reason, message = "Unknown", ""
    if isinstance(payload, Mapping):
        reason = str(payload.get("reason") or reason)
        message = str(payload.get("message") or "")
    return _ERRORS.get(status, ApiError)(status, reason, message)


# --- writes with comparison (idempotent) ----------------------------------------------------

_COMPARED = ("data", "type", "spec")


def needs_write(desired: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether `current` lacks anything `desired` says: its content, or one of its labels,
    annotations or owner references. Foreign labels and annotations on `current` are fine."""
    if current is None:
        return True
    for field in _COMPARED:
        if field in desired and desired[field] != current.get(field):
            return True
    want, have = desired.get("metadata") or {}, current.get("metadata") or {}
    for field in ("labels", "annotations"):
        present = have.get(field) or {}
        if any(present.get(k) != v for k, v in (want.get(field) or {}).items()):
            return True
    owners = {o.get("uid") for o in have.get("ownerReferences") or ()}
    return any(o.get("uid") not in owners for o in want.get("ownerReferences") or ())


async def apply(client: KubeClient, kind: Kind, desired: Mapping[str, Any],
                current: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Create `desired`, or replace `current` with it; None when nothing needed writing.

    The replacement keeps foreign labels and annotations and carries `current`'s
    resourceVersion, so a concurrent change makes it fail with `Conflict` instead of being lost.
    """
    if not needs_write(desired, current):
        return None
    if current is None:
        try:
            return await client.create(kind, desired)
        except Conflict:
            metadata = desired["metadata"]
            current = await client.get(kind, metadata.get("namespace"), metadata["name"])
            if current is None or not needs_write(desired, current):
                return current
    body = dict(desired)
    want, have = dict(desired.get("metadata") or {}), current.get("metadata") or {}
    for field in ("labels", "annotations"):
        merged = {**(have.get(field) or {}), **(want.get(field) or {})}
        if merged:
            want[field] = merged
    if have.get("ownerReferences") and "ownerReferences" not in want:
        want["ownerReferences"] = have["ownerReferences"]
    want["resourceVersion"] = have.get("resourceVersion")
    body["metadata"] = want
    return await client.replace(kind, body)


def owner_reference(owner: Mapping[str, Any], controller: bool = True) -> dict[str, Any]:
    """An ownerReference to `owner`, so Kubernetes garbage-collects the dependent with it."""
    metadata = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": metadata["name"], "uid": metadata["uid"],
        "controller": controller, "blockOwnerDeletion": True,
    }


async def patch_status(client: KubeClient, kind: Kind, body: Mapping[str, Any],
                       status: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge `status` into the object's status subresource, only if the object is still at the
    resourceVersion `body` was read at. None when it changed or vanished meanwhile: its watch
    event is on the way, and the next pass works from the fresh object."""
    metadata = body["metadata"]
    patch = {"metadata": {"resourceVersion": metadata["resourceVersion"]}, "status": status}
    try:
        return await client.patch(kind, metadata.get("namespace"), metadata["name"], patch,
                                  subresource="status")
    except (Conflict, NotFound):
        return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def post_event(client: KubeClient, involved: Mapping[str, Any], *, type_: str,
                     reason: str, message: str, component: str, instance: str) -> None:
    """A core/v1 Event on `involved` (what `kubectl describe` and `kubectl events` show).

    Best effort: an Event that cannot be posted is logged, never raised; a lost Event must not
    stop a status update or a config write.
    """
    metadata = involved["metadata"]
    namespace = metadata.get("namespace") or client.default_namespace or "default"
    now = _now()
    body = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
            "name": metadata["name"], "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"), "resourceVersion": metadata.get("resourceVersion"),
        },
        "reason": reason, "message": message[:1024], "type": type_,
        "source": {"component": component},
        "reportingComponent": component, "reportingInstance": instance[:128],
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    try:
        await client.create(EVENTS, body)
    except ApiError as exc:
        logger.warning("could not post event %s on %s %s/%s: %s", reason, involved.get("kind"),
                       namespace, metadata["name"], exc)
