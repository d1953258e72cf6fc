"""Config through the API: list + watch the operator's ConfigMaps, swap the config at once.

Why: the kubelet refreshes a mounted ConfigMap only every minute or so (its sync period plus
its cache TTL), far from the 5 s apply → enforced target. The gateway instead watches the
ConfigMaps labelled `tollgate.dev/config=<name>` in its namespace and serves a new revision as
soon as the last of its parts arrives (typically tens of milliseconds after the operator
writes it).

Rules:
- A set of parts is served only when it is complete: every `part-NNNN-of-MMMM.json` for one
  MMMM, all carrying one `revision` (`merge_parts` refuses anything else). A half-updated set
  (some parts at the new revision, some at the old) is not an error: the last config keeps
  serving until the set is whole again.
- A complete set is validated and built like a file config; an invalid one is rejected and
  the last good config keeps serving (`/readyz` shows `lastReloadError`).
- The mounted directory stays the fallback: it is what the gateway serves at start-up until
  the first list answers, and while the watch fails it is polled again; a revision from it is
  taken only when this process has not served it before (the kubelet's copy lags, and must
  not undo a newer revision the watch delivered).
- The provider key files (the credentials Secret, still mounted) are polled either way; a
  change rebuilds the served config with the new keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from pydantic import ValidationError

from tollgate.gateway.config.loader import ConfigError, ConfigHolder, merge_parts, read_config
from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.kube.client import ApiError, Gone, KubeClient, configmaps_path
from tollgate.gateway.kube.revisions import RevisionLog

__all__ = ["CONFIG_LABEL", "ConfigMapSource", "Incomplete", "assemble"]

log = logging.getLogger("tollgate.config")

T = TypeVar("T")

CONFIG_LABEL = "tollgate.dev/config"
_PART = re.compile(r"^part-(\d{4})-of-(\d{4})\.json$")
_WATCH_SECONDS = 240
_MAX_BACKOFF = 5.0
_INCOMPLETE_WARN_SECONDS = 30.0


class Incomplete(Exception):
    """The ConfigMaps do not (yet) hold one whole set of parts; not an error."""


def _explain(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '(document)'}: "
        f"{item['msg'].removeprefix('Value error, ')}"
        for item in error.errors(include_url=False, include_input=False))


@dataclass(frozen=True)
class _Part:
    index: int
    count: int
    revision: Any
    document: dict[str, Any]
    raw: bytes


def _parts(config_map: Mapping[str, Any]) -> list[_Part]:
    found = []
    for key, text in (config_map.get("data") or {}).items():
        match = _PART.match(key)
        if match is None or not isinstance(text, str):
            continue
        raw = text.encode()
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            name = (config_map.get("metadata") or {}).get("name")
            raise ConfigError(f"ConfigMap {name} entry {key} is not JSON") from None
        if not isinstance(document, dict):
            raise ConfigError(f"config part {key} must be a JSON object")
        found.append(_Part(int(match.group(1)), int(match.group(2)),
                           document.get("revision"), document, raw))
    return found


def assemble(parts: Iterable[_Part]) -> tuple[GatewayConfig, str]:
    """One complete set of parts → the validated config and its revision.

    Raises Incomplete while no set is whole (or two are), ConfigError when the whole set is
    not a valid config."""
    groups: dict[tuple[int, Any], dict[int, list[_Part]]] = {}
    for part in parts:
        groups.setdefault((part.count, part.revision), {}).setdefault(part.index, []).append(part)
    whole = [(key, members) for key, members in groups.items()
             if key[0] > 0 and set(members) == set(range(key[0]))
             and all(len(same) == 1 for same in members.values())]
    if len(whole) != 1:
        present = sorted(f"{p}/{c}@{r}" for (c, r), m in groups.items() for p in m)
        raise Incomplete(f"no single complete set of config parts (have {', '.join(present)})")
    (count, _revision), members = whole[0]
    ordered = [members[i][0] for i in range(count)]
    merged = merge_parts([p.document for p in ordered])
    try:
        config = GatewayConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    if config.revision:
        return config, config.revision
    digest = hashlib.sha256()
    for part in ordered:
        digest.update(part.raw)
    return config, digest.hexdigest()[:12]


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _tree(path: str) -> tuple[Any, ...]:
    """What changes when the kubelet swaps a mounted directory (or a file is rewritten)."""
    if not os.path.isdir(path):
        return (_stat(path),)
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return (None,)
    return tuple((name, _stat(os.path.join(path, name))) for name in names)


class ConfigMapSource(Generic[T]):
    """Keeps `holder` on the newest complete config in the ConfigMaps; see the module doc."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        holder: ConfigHolder[T],
        build: Callable[[GatewayConfig, str], T],
        *,
        fallback_path: str,
        watched_files: Callable[[GatewayConfig], list[str]] = lambda _: [],
        on_result: Callable[[str], None] = lambda _: None,
        served: RevisionLog | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.holder = holder
        self._build = build
        self._fallback_path = fallback_path
        self._watched_files = watched_files
        self._on_result = on_result
        self.served = served if served is not None else RevisionLog()
        self.poll_interval = poll_interval
        self.selector = f"{CONFIG_LABEL}={name}"
        self.healthy = False
        """True while the list/watch is up; False: the mounted directory is the source."""
        self._maps: dict[str, dict[str, Any]] = {}
        self._parsed: dict[str, tuple[str | None, list[_Part] | ConfigError]] = {}
        self._resource_version = ""
        self._rejected: str | None = None
        self._incomplete: str | None = None
        self._incomplete_since: float | None = None
        self._incomplete_warned = False
        self._credentials: tuple[str | None, tuple[Any, ...]] = (None, ())
        self._fallback_seen: tuple[Any, ...] = _tree(fallback_path)

    # -- applying a config -------------------------------------------------------------------

    def _current_revision(self) -> str | None:
        return getattr(self.holder.current, "revision", None)

    def _swap(self, config: GatewayConfig, revision: str, origin: str) -> bool:
        # Key files are stat-ed before the build reads them: a write landing during the build
        # shows up as a change on the next poll instead of being lost.
        credentials = (revision, tuple(_stat(p) for p in self._watched_files(config)))
        try:
            snapshot = self._build(config, revision)
        except Exception as exc:  # a bug must not stop the watch: reject like a bad config
            log.exception("config could not be applied", extra={"event": "config_rejected"})
            self._reject(f"the config could not be applied ({type(exc).__name__}); see the log")
            return False
        self.holder.swap(snapshot)
        self._credentials = credentials
        self._rejected = None
        self.served.record(config, revision)
        log.info("config loaded", extra={"event": "config_loaded", "revision": revision,
                                          "source": origin})
        self._on_result("loaded")
        return True

    def _reject(self, reason: str) -> None:
        if reason == self._rejected:
            return  # the same broken set again (another part's event): said already
        self._rejected = reason
        self.holder.last_error = reason
        log.error("config rejected; still serving the last good config: %s", reason,
                  extra={"event": "config_rejected", "source": "configmaps"})
        self._on_result("rejected")

    def _parts_of(self, name: str, body: dict[str, Any]) -> list[_Part]:
        version = (body.get("metadata") or {}).get("resourceVersion")
        cached = self._parsed.get(name)
        if cached is None or cached[0] != version or version is None:
            try:
                cached = (version, _parts(body))
            except ConfigError as exc:
                cached = (version, exc)
            self._parsed[name] = cached
        if isinstance(cached[1], ConfigError):
            raise cached[1]
        return cached[1]

    def evaluate(self) -> bool:
        """Serve the ConfigMaps' config if it is whole, valid and not served already; True
        when a new config was swapped in."""
        try:
            parts = [p for name, body in sorted(self._maps.items())
                     for p in self._parts_of(name, body)]
            revisions = {p.revision for p in parts}
            if len(revisions) == 1 and next(iter(revisions)) == self._current_revision() \
                    and self._rejected is None:
                self._incomplete_since = None
                return False  # served already: no need to merge and validate again
            config, revision = assemble(parts)
        except Incomplete as exc:
            if self._incomplete_since is None:
                self._incomplete_since = time.monotonic()
            log.debug("config parts are mid-update; keeping revision %s (%s)",
                      self._current_revision(), exc)
            self._incomplete = str(exc)
            return False
        except ConfigError as exc:
            self._reject(str(exc))
            return False
        self._incomplete_since = self._incomplete = None
        self._incomplete_warned = False
        if revision == self._current_revision():
            self._rejected = None
            return False
        return self._swap(config, revision, "configmaps")

    # -- the API side ------------------------------------------------------------------------

    async def sync(self) -> None:
        """List the ConfigMaps and serve what they hold (raises ApiError)."""
        listed = await self.client.list(configmaps_path(self.namespace), self.selector)
        self._maps = {str(m["metadata"]["name"]): m for m in listed.get("items") or ()}
        self._parsed = {k: v for k, v in self._parsed.items() if k in self._maps}
        self._resource_version = str((listed.get("metadata") or {}).get("resourceVersion")
                                     or "")
        self.healthy = True
        self.evaluate()

    async def _watch_once(self) -> None:
        async for event in self.client.watch(
                configmaps_path(self.namespace), resource_version=self._resource_version,
                label_selector=self.selector, timeout_seconds=_WATCH_SECONDS):
            body = event.get("object") or {}
            metadata = body.get("metadata") or {}
            version = metadata.get("resourceVersion")
            if version:
                self._resource_version = str(version)
            kind, name = event.get("type"), metadata.get("name")
            if kind == "BOOKMARK" or not name:
                continue
            if kind == "DELETED":
                self._maps.pop(name, None)
                self._parsed.pop(name, None)
            elif kind in ("ADDED", "MODIFIED"):
                labels = metadata.get("labels") or {}
                if labels.get(CONFIG_LABEL) == self.name:
                    self._maps[name] = body
                else:  # relabelled away from our selector
                    self._maps.pop(name, None)
            self.evaluate()

    async def watch(self) -> None:
        """List, then watch, forever; on errors back off (the mounted directory takes over
        meanwhile, see `poll_files`) and list again."""
        failures = 0
        listed = self.healthy
        while True:
            try:
                if not listed:
                    await self.sync()
                    listed = True
                    if failures:
                        log.info("ConfigMap watch is back", extra={"event": "config_watch_up"})
                    failures = 0
                await self._watch_once()
            except Gone:
                listed = False  # our resourceVersion is too old: list again at once
            except (ApiError, ConfigError, ValueError, KeyError, TypeError) as exc:
                failures += 1
                listed = False
                if self.healthy or failures == 1:
                    log.warning("ConfigMap watch failed (%s); the mounted config is the "
                                "fallback until it is back", exc,
                                extra={"event": "config_watch_down"})
                self.healthy = False
                delay = min(_MAX_BACKOFF, 0.2 * 2 ** min(failures, 6))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    # -- the mounted files ---------------------------------------------------------------------

    def check_files(self) -> None:
        """One poll: rebuild on a changed provider key file; while the watch is down, take a
        new revision from the mounted directory."""
        current = self.holder.current
        config, revision = getattr(current, "config", None), getattr(current, "revision", None)
        if isinstance(config, GatewayConfig) and isinstance(revision, str):
            self.served.record(config, revision)  # also what the file watcher loaded at start
            files = tuple(_stat(p) for p in self._watched_files(config))
            if self._credentials[0] != revision:
                self._credentials = (revision, files)
            elif files != self._credentials[1]:
                self._swap(config, revision, "credentials")
        if self._incomplete_since is not None and not self._incomplete_warned and \
                time.monotonic() - self._incomplete_since > _INCOMPLETE_WARN_SECONDS:
            # An update that never completes (the operator died mid-write?) is worth a word.
            log.warning("the config ConfigMaps have not held one whole set of parts for %.0f s;"
                        " still serving revision %s (%s)", _INCOMPLETE_WARN_SECONDS,
                        self._current_revision(), self._incomplete)
            self._incomplete_warned = True
        if self.healthy:
            return
        seen = _tree(self._fallback_path)
        if seen == self._fallback_seen:
            return
        self._fallback_seen = seen
        try:
            config, revision = read_config(self._fallback_path)
        except ConfigError as exc:
            log.warning("the mounted config is not usable either: %s", exc)
            return
        if revision == self._current_revision():
            return
        if self.served.position(revision) is not None:
            log.info("the mounted config holds revision %s, older than the one served; "
                     "ignored", revision)
            return
        self._swap(config, revision, "mounted files")

    async def poll_files(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.check_files()
            except Exception:  # never let a bug end polling
                log.exception("polling the mounted config failed")

    async def run(self) -> None:
        """Watch and poll until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.watch(), name="tollgate configmap watch")
            group.create_task(self.poll_files(), name="tollgate mounted files")
