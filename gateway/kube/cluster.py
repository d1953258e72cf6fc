"""The gateway's Kubernetes features, wired for the app's lifespan.

`tollgate gateway --watch-configmaps NAMESPACE/NAME` turns them on:

    ConfigMapSource   list + watch the ConfigMaps `tollgate.dev/config=NAME`, swap the config
    Roster            report this replica's served revision (Lease `NAME-replicas`)
    LeaderElector     run for the Lease `NAME-status` ...
    StatusPublisher   ... and, while holding it, publish VirtualKey status every interval

All of it runs as background tasks of the serving process; none of it is on a request's path.
Without credentials (no service account, no kubeconfig) the gateway logs an error and keeps
serving its mounted config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from tollgate.gateway.config.loader import ConfigHolder
from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.kube.client import (
    ApiError,
    KubeClient,
    KubeConfigError,
    connection_from_environment,
)
from tollgate.gateway.kube.configmaps import ConfigMapSource
from tollgate.gateway.kube.events import EventSink
from tollgate.gateway.kube.lease import LeaderElector, LeaseConfig
from tollgate.gateway.kube.options import ClusterOptions
from tollgate.gateway.kube.revisions import RevisionLog
from tollgate.gateway.kube.roster import Roster
from tollgate.gateway.kube.status import StatusPublisher
from tollgate.gateway.runtime import Snapshot

__all__ = ["GatewayCluster", "start_cluster"]

log = logging.getLogger("tollgate.kube")

class GatewayCluster:
    """Owns the API client and the background tasks; `start()` in the lifespan, `aclose()`
    on the way out."""

    def __init__(self, options: ClusterOptions, holder: ConfigHolder[Snapshot],
                 build: Callable[[GatewayConfig, str], Snapshot], *, fallback_path: str,
                 watched_files: Callable[[GatewayConfig], list[str]],
                 on_result: Callable[[str], None], observability: Any = None) -> None:
        self.options = options
        self._observability = observability
        self.holder = holder
        self.identity = options.replica_identity()
        self._build = build
        self._fallback_path = fallback_path
        self._watched_files = watched_files
        self._on_result = on_result
        self.client: KubeClient | None = None
        self.source: ConfigMapSource[Snapshot] | None = None
        self.roster: Roster | None = None
        self.elector: LeaderElector | None = None
        self.publisher: StatusPublisher | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, startup_seconds: float = 5.0) -> bool:
        """Connect and list the ConfigMaps once (bounded: the mounted config serves meanwhile);
        False when there are no credentials to connect with."""
        options = self.options
        try:
            connection = connection_from_environment()
        except KubeConfigError as exc:
            log.error("--watch-configmaps: %s; serving the mounted config only", exc)
            return False
        # The identity in the User-Agent: API server audit logs show which replica wrote.
        self.client = KubeClient(connection, user_agent=f"tollgate-gateway/{self.identity}")
        served = RevisionLog()
        self.source = ConfigMapSource(
            self.client, options.namespace, options.config_name, self.holder, self._build,
            fallback_path=self._fallback_path, watched_files=self._watched_files,
            on_result=self._on_result, served=served)
        try:
            await asyncio.wait_for(self.source.sync(), startup_seconds)
        except (ApiError, TimeoutError) as exc:
            log.warning("cannot list the config ConfigMaps yet (%s); serving the mounted "
                        "config until the watch connects", exc or "timed out")
        self.source.check_files()  # note the served revision (file or API) right away
        if self._observability is not None:
            # Alerts on a VirtualKey's key also become Events on it (`kubectl describe`).
            self._observability.add_sink(EventSink(self.client, instance=self.identity))
        if options.status_interval > 0:
            self.roster = Roster(self.client, options.namespace,
                                 f"{options.config_name}-replicas", self.identity,
                                 heartbeat=options.status_interval)
            self.elector = LeaderElector(self.client, LeaseConfig(
                options.namespace, f"{options.config_name}-status", self.identity,
                options.lease_seconds), logger=logging.getLogger("tollgate.status"))
            self.publisher = StatusPublisher(self.client, self.holder, self.elector,
                                             self.roster, served,
                                             interval=options.status_interval,
                                             observability=self._observability)
        log.info("watching ConfigMaps %s/%s (label tollgate.dev/config=%s)%s as %s",
                 options.namespace, options.config_name, options.config_name,
                 "" if self.publisher is None else
                 f"; publishing VirtualKey status every {options.status_interval:g} s",
                 self.identity)
        return True

    def _revision(self) -> str | None:
        return getattr(self.holder.current, "revision", None)

    async def run(self) -> None:
        """The background jobs, until cancelled (the lifespan runs this as a task)."""
        self._task = asyncio.current_task()
        jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        if self.source is not None:
            jobs.append(("configmaps", self.source.run))
        if self.roster is not None:
            roster = self.roster
            jobs.append(("roster", lambda: roster.run(self._revision)))
        if self.elector is not None:
            jobs.append(("status lease", self.elector.campaign))
        if self.publisher is not None:
            jobs.append(("status publisher", self.publisher.run))
        async with asyncio.TaskGroup() as group:
            for name, job in jobs:
                group.create_task(_supervised(name, job), name=f"tollgate {name}")

    async def aclose(self) -> None:
        """Stop the tasks, give up the Lease and this replica's roster entry, close."""
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.roster is not None:
            await self.roster.withdraw()
        if self.client is not None:
            await self.client.close()


async def start_cluster(options: ClusterOptions, holder: ConfigHolder[Snapshot],
                        build: Callable[[GatewayConfig, str], Snapshot], config_path: str,
                        watched_files: Callable[[GatewayConfig], list[str]],
                        on_result: Callable[[str], None], *,
                        observability: Any = None) -> GatewayCluster | None:
    """A started GatewayCluster, or None (no credentials: the file watcher stays in charge).
    `observability` (the lifespan's Observability) feeds `SpendAnomaly` and the forecast."""
    cluster = GatewayCluster(options, holder, build, fallback_path=config_path,
                             watched_files=watched_files, on_result=on_result,
                             observability=observability)
    if await cluster.start():
        return cluster
    await cluster.aclose()
    return None


async def _supervised(name: str, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `job` forever: a bug that ends it is logged and the job restarted (after a pause),
    so one broken feature never takes the others, or the config watch, down with it."""
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped unexpectedly; restarting it in 5 s", name)
            await asyncio.sleep(5.0)
