"""The gateway's Kubernetes API client: the only module of the gateway that talks to the API
server.

Credentials, in this order: `$KUBECONFIG` when set (the first file that names a current
context); else the pod's service account (`KUBERNETES_SERVICE_HOST` and the token mounted at
/var/run/secrets/kubernetes.io/serviceaccount, re-read every minute because bound tokens
rotate); else `~/.kube/config`. Kubeconfig users may carry a token, a token file, a client
certificate or basic credentials; `exec` and `auth-provider` plugins are not supported.

One aiohttp session; JSON in and out; every failure becomes an `ApiError` subclass, with the
status code, the API's `reason` and its message. `watch()` yields the events of a watch
stream, parsing lines of any size (a ConfigMap part is close to 1 MiB).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tollgate.gateway.kube.lease import LeaseConflict, LeaseError

__all__ = [
    "CR_API_VERSION",
    "MERGE_PATCH",
    "SERVICE_ACCOUNT_DIR",
    "ApiError",
    "Conflict",
    "Connection",
    "Gone",
    "KubeClient",
    "KubeConfigError",
    "NotFound",
    "Unreachable",
    "configmaps_path",
    "connection_from_environment",
    "leases_path",
    "virtualkey_status_path",
]

log = logging.getLogger("tollgate.kube")

CR_API_VERSION = "tollgate.dev/v1alpha1"
MERGE_PATCH = "application/merge-patch+json"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TOKEN_REREAD_SECONDS = 60.0


# --- errors ---------------------------------------------------------------------------------


class KubeConfigError(Exception):
    """No usable credentials: not in a pod, and no kubeconfig (or one we cannot use)."""


class ApiError(Exception):
    """The API server refused a request (or could not be reached: `Unreachable`)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    """404: the object, its namespace or its kind does not exist."""


class Conflict(ApiError):
    """409: the object exists already, or changed since the resourceVersion sent."""


class Gone(ApiError):
    """410: a watch asked for a resourceVersion the server no longer keeps; list again."""


class Unreachable(ApiError):
    """No answer: connection refused, reset or timed out."""


_ERRORS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 410: Gone}


def _error(status: int, payload: Any, what: str) -> ApiError:
    reason, message = "Unknown", what
    if isinstance(payload, Mapping):
        reason = str(payload.get("reason") or reason)
        message = str(payload.get("message") or what)
    return _ERRORS.get(status, ApiError)(status, reason, message)


# --- paths ----------------------------------------------------------------------------------


def configmaps_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


def leases_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


def virtualkey_status_path(namespace: str, name: str) -> str:
    return f"/apis/{CR_API_VERSION}/namespaces/{namespace}/virtualkeys/{name}/status"


# --- where the API server is and who we are -------------------------------------------------


@dataclass
class Connection:
    """How to reach the API server: its URL, TLS settings and credentials."""

    server: str
    namespace: str = "default"
    ssl_context: ssl.SSLContext | None = None
    token: str | None = None
    token_file: Path | None = None
    basic: tuple[str, str] | None = None
    _token_read_at: float = field(default=0.0, repr=False)

    def headers(self) -> dict[str, str]:
        """Authorization for the next request (a token file is re-read every minute)."""
        if self.token_file is not None and (
                self.token is None or time.monotonic() - self._token_read_at
                > _TOKEN_REREAD_SECONDS):
            self.reread()
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.basic:
            raw = f"{self.basic[0]}:{self.basic[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def reread(self) -> None:
        """Read the token file again (after a 401, or when the token may have rotated)."""
        if self.token_file is None:
            return
        try:
            self.token = self.token_file.read_text().strip()
        except OSError as exc:
            log.warning("cannot read the service account token %s: %s", self.token_file,
                        exc.strerror)
        self._token_read_at = time.monotonic()


def _decoded(data: str) -> bytes:
    return base64.b64decode(data)


def _tls(server: str, ca_file: str | None, ca_data: str | None, insecure: bool,
         cert: tuple[bytes | str, bytes | str] | None) -> ssl.SSLContext | None:
    """TLS for an https server; `cert` is (certificate, key), each PEM bytes or a path."""
    if not server.startswith("https://"):
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if ca_data:
        context.load_verify_locations(cadata=_decoded(ca_data).decode())
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        certificate, key = cert
        if isinstance(certificate, str) and isinstance(key, str):
            context.load_cert_chain(certificate, key)
        else:
            # ssl loads client certificates only from files: write them briefly, private to us.
            with tempfile.TemporaryDirectory() as tmp:
                paths = []
                for name, value in (("client.crt", certificate), ("client.key", key)):
                    if isinstance(value, str):
                        paths.append(value)
                        continue
                    path = os.path.join(tmp, name)
                    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
                        out.write(value)
                    paths.append(path)
                context.load_cert_chain(paths[0], paths[1])
    return context


def in_cluster(directory: Path = SERVICE_ACCOUNT_DIR,
               environ: Mapping[str, str] = os.environ) -> Connection:
    """The pod's service account: the API server's Service address and the mounted token."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeConfigError("not in a pod: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file = directory / "token"
    if not token_file.exists():
        raise KubeConfigError(f"no service account token at {token_file}")
    if ":" in host:
        host = f"[{host}]"
    server = f"https://{host}:{port}"
    ca = directory / "ca.crt"
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    connection = Connection(server, namespace,
                            _tls(server, str(ca) if ca.exists() else None, None, False, None),
                            token_file=token_file)
    connection.reread()
    return connection


def _named(entries: Any, name: str | None, what: str, source: Path) -> dict[str, Any]:
    for entry in entries or ():
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise KubeConfigError(f"{source}: no {what} named {name!r}")


def from_kubeconfig(path: Path) -> Connection:
    """The current context of one kubeconfig file."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"cannot read the kubeconfig {path}: {exc}") from None
    if not isinstance(document, Mapping) or not document.get("current-context"):
        raise KubeConfigError(f"{path}: no current-context")
    context = _named(document.get("contexts"), document["current-context"], "context", path)
    cluster = _named(document.get("clusters"), context.get("cluster"), "cluster", path)
    user = _named(document.get("users"), context.get("user"), "user", path) \
        if context.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeConfigError(f"{path}: exec and auth-provider credentials are not supported; "
                              "use a token, a token file or a client certificate")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise KubeConfigError(f"{path}: the cluster has no server")
    base = path.parent

    def local(value: str | None) -> str | None:
        return str(base / value) if value and not os.path.isabs(value) else value

    cert: tuple[bytes | str, bytes | str] | None = None
    certificate = user.get("client-certificate-data") or local(user.get("client-certificate"))
    key = user.get("client-key-data") or local(user.get("client-key"))
    if certificate and key:
        cert = (_decoded(certificate) if "client-certificate-data" in user else certificate,
                _decoded(key) if "client-key-data" in user else key)
    context_tls = _tls(server, local(cluster.get("certificate-authority")),
                       cluster.get("certificate-authority-data"),
                       bool(cluster.get("insecure-skip-tls-verify")), cert)
    token_file = local(user.get("tokenFile"))
    basic = (str(user["username"]), str(user.get("password") or "")) \
        if user.get("username") else None
    connection = Connection(server, str(context.get("namespace") or "default"), context_tls,
                            token=user.get("token"),
                            token_file=Path(token_file) if token_file else None, basic=basic)
    connection.reread()
    return connection


def connection_from_environment(environ: Mapping[str, str] = os.environ) -> Connection:
    """`$KUBECONFIG`, else the pod's service account, else `~/.kube/config`."""
    if environ.get("KUBECONFIG"):
        problems = []
        for item in environ["KUBECONFIG"].split(os.pathsep):
            if item and Path(item).exists():
                try:
                    return from_kubeconfig(Path(item))
                except KubeConfigError as exc:
                    problems.append(str(exc))
        raise KubeConfigError("no usable kubeconfig in $KUBECONFIG" +
                              (f": {'; '.join(problems)}" if problems else ""))
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(environ=environ)
    home = Path(environ.get("HOME") or Path.home()) / ".kube" / "config"
    if home.exists():
        return from_kubeconfig(home)
    raise KubeConfigError("not in a pod and no kubeconfig: cannot reach the Kubernetes API")


# --- the client -----------------------------------------------------------------------------


class KubeClient:
    """A thin JSON client for the API server: one aiohttp session, errors as `ApiError`."""

    def __init__(self, connection: Connection, *, timeout: float = 10.0,
                 user_agent: str = "tollgate-gateway") -> None:
        self.connection = connection
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def server(self) -> str:
        return self.connection.server.rstrip("/")

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.connection.ssl_context or False, limit=16)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout,
                headers={"User-Agent": self._user_agent, "Accept": "application/json"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *,
                      params: Mapping[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json") -> Any:
        """One call; on 401 the credentials are read again once (a rotated token)."""
        what = f"{method} {path}"
        for attempt in (1, 2):
            headers = self.connection.headers()
            if body is not None:
                headers["Content-Type"] = content_type
            try:
                async with self._open().request(
                        method, self.server + path, params=params, headers=headers,
                        data=None if body is None else json.dumps(body)) as response:
                    if response.status == 401 and attempt == 1 \
                            and self.connection.token_file is not None:
                        self.connection.reread()
                        continue
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Unreachable(0, type(exc).__name__, f"{what}: {exc or 'no answer'}") \
                    from exc
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:  # a proxy's HTML page, a truncated body
                payload = None
                if response.status < 400:
                    raise ApiError(response.status, "InvalidResponse",
                                   f"{what}: the answer is not JSON") from None
            if response.status >= 400:
                raise _error(response.status, payload, what)
            return payload
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`; None when it does not exist."""
        try:
            return dict(await self.request("GET", path))
        except NotFound:
            return None

    async def list(self, path: str, label_selector: str | None = None) -> dict[str, Any]:
        """The whole List answer (items and `metadata.resourceVersion`)."""
        params = {"labelSelector": label_selector} if label_selector else None
        return dict(await self.request("GET", path, params=params))

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self.request("POST", path, body=body))

    async def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self.request("PUT", path, body=body))

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH))

    async def watch(self, path: str, *, resource_version: str,
                    label_selector: str | None = None,
                    timeout_seconds: int = 300) -> AsyncIterator[dict[str, Any]]:
        """Events (`{"type", "object"}`) of one watch, from `resource_version` on, until the
        server ends it (`timeout_seconds`). BOOKMARKs are yielded too: they carry the latest
        resourceVersion. An ERROR event is raised as its ApiError (410 → Gone)."""
        params = {"watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        if label_selector:
            params["labelSelector"] = label_selector
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5,
                                        sock_read=timeout_seconds + 30)
        what = f"WATCH {path}"
        try:
            async with self._open().get(self.server + path, params=params, timeout=timeout,
                                        headers=self.connection.headers()) as response:
                if response.status >= 400:
                    raw = await response.read()
                    try:
                        payload = json.loads(raw) if raw else None
                    except ValueError:
                        payload = None
                    if response.status == 401:
                        self.connection.reread()
                    raise _error(response.status, payload, what)
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield _event(line, what)
                if buffer.strip():
                    yield _event(buffer, what)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(0, type(exc).__name__, f"{what}: {exc or 'no answer'}") from exc

    # -- lease.LeaseAPI ---------------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.get(leases_path(namespace, name))
        except ApiError as exc:
            raise LeaseError(str(exc)) from exc

    async def create_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await self.create(leases_path(body["metadata"]["namespace"]), body)
        except Conflict as exc:
            raise LeaseConflict(str(exc)) from exc
        except ApiError as exc:
            raise LeaseError(str(exc)) from exc

    async def replace_lease(self, body: Mapping[str, Any]) -> dict[str, Any]:
        metadata = body["metadata"]
        try:
            return await self.replace(leases_path(metadata["namespace"], metadata["name"]), body)
        except (Conflict, NotFound) as exc:
            raise LeaseConflict(str(exc)) from exc
        except ApiError as exc:
            raise LeaseError(str(exc)) from exc


def _event(line: bytes, what: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        raise ApiError(0, "InvalidResponse", f"{what}: a watch event is not JSON") from None
    if not isinstance(event, dict):
        raise ApiError(0, "InvalidResponse", f"{what}: a watch event is not an object")
    if event.get("type") == "ERROR":
        status = event.get("object") or {}
        raise _error(int(status.get("code") or 500), status, what)
    return event
