"""How the gateway reaches its cluster: `--watch-configmaps NAMESPACE/NAME` and friends.

Standard library only, so `tollgate gateway` and `app_from_env` read these options without
importing the API client. The CLI hands them to every uvicorn worker through the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tollgate.gateway.kube.lease import default_identity

__all__ = ["ClusterOptions", "parse_target"]

WATCH_ENV = "TOLLGATE_WATCH_CONFIGMAPS"
INTERVAL_ENV = "TOLLGATE_STATUS_INTERVAL"
LEASE_ENV = "TOLLGATE_STATUS_LEASE_SECONDS"
IDENTITY_ENV = "TOLLGATE_IDENTITY"


def parse_target(text: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` → (namespace, name); ValueError with a readable message otherwise."""
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise ValueError(f"expected NAMESPACE/CONFIGNAME, e.g. tollgate-system/"
                         f"tollgate-gateway-config; got {text!r}")
    return namespace, name


@dataclass(frozen=True)
class ClusterOptions:
    namespace: str
    """Where the operator writes the ConfigMaps; also home of the Leases the gateway uses."""
    config_name: str
    """The ConfigMaps' base name (label `tollgate.dev/config=<name>`)."""
    status_interval: float = 15.0
    """Seconds between status rounds; 0 turns the publisher (and the roster) off."""
    lease_seconds: float = 15.0
    """Duration of the status publisher's Lease: how long a silent publisher keeps it."""
    identity: str | None = None
    """This replica's name in the Leases (default: $POD_NAME-<pid>); `$TOLLGATE_IDENTITY`.
    Must be unique per process: leave it unset with several workers."""

    def to_env(self) -> dict[str, str]:
        """For `uvicorn --factory`: every worker process builds its app from the environment."""
        env = {WATCH_ENV: f"{self.namespace}/{self.config_name}",
               INTERVAL_ENV: repr(self.status_interval), LEASE_ENV: repr(self.lease_seconds)}
        if self.identity:
            env[IDENTITY_ENV] = self.identity
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ClusterOptions | None:
        target = environ.get(WATCH_ENV)
        if not target:
            return None
        namespace, name = parse_target(target)
        return cls(namespace, name, float(environ.get(INTERVAL_ENV) or 15.0),
                   float(environ.get(LEASE_ENV) or 15.0), environ.get(IDENTITY_ENV) or None)

    def replica_identity(self) -> str:
        """Unique per serving process: the pod name plus the pid (uvicorn may run several
        workers in one pod)."""
        if self.identity:
            return self.identity
        pod = os.environ.get("POD_NAME")
        return f"{pod}-{os.getpid()}" if pod else default_identity()
