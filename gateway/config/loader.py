"""Read → validate → atomic swap. An invalid file never replaces the last good config.

`ConfigWatcher` polls the file (and the Kubernetes ConfigMap-volume layout, where the file is a
symlink through `..data` that the kubelet swaps atomically): `os.stat` follows the symlinks, so a
swap changes the inode it sees. Polling every 0.25 s keeps a change in force well within 1 s and
needs no inotify, which does not see symlink swaps reliably anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
import yaml
from pydantic import ValidationError

from tollgate.gateway.config.models import GatewayConfig

__all__ = [
    "ConfigError",
    "ConfigHolder",
    "ConfigWatcher",
    "merge_parts",
    "parse_config",
    "read_config",
]

log = logging.getLogger("tollgate.config")

T = TypeVar("T")


class ConfigError(ValueError):
    """A config document that cannot be served; the message lists every problem by field path."""


def _path_of(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i >= 2 and loc[i - 2] == "providers" and isinstance(loc[i - 1], int):
            continue  # the discriminated union's tag (the provider type) is not a user field
        elif part == "function-after":
            continue  # a validator's name, not a field
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{_path_of(tuple(item['loc']))}: {message}")
    return "; ".join(lines)


def parse_config(text: str | bytes) -> GatewayConfig:
    """Parse and validate a GatewayConfig document (YAML or JSON)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"the config is not valid YAML{where}") from None
    if not isinstance(document, dict):
        raise ConfigError("the config must be a YAML mapping with `apiVersion` and `kind`")
    try:
        return GatewayConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


_PART = re.compile(r"^part-(\d{4})-of-(\d{4})\.json$")


def _part_files(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise ConfigError(f"cannot read the config directory {directory!r}: {exc.strerror}") \
            from None
    return sorted(name for name in names if _PART.match(name))


def merge_parts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sharded config (the operator splits big configs across ConfigMaps): list sections are
    concatenated in part order, everything else comes from part 0; all parts must carry the
    same `revision`, or the set is mid-update and must not be served."""
    revisions = {part.get("revision") for part in parts}
    if len(revisions) != 1:
        raise ConfigError("the config parts carry different revisions (an update is still "
                          "propagating); keeping the last good config")
    merged = dict(parts[0])
    for part in parts[1:]:
        for name, value in part.items():
            if isinstance(value, list):
                merged[name] = [*merged.get(name, []), *value]
    return merged


def _read_parts(directory: str) -> tuple[GatewayConfig, str]:
    names = _part_files(directory)
    if not names:
        raise ConfigError(f"the config directory {directory!r} holds no part-NNNN-of-NNNN.json")
    total = int(_PART.match(names[0]).group(2))  # type: ignore[union-attr]
    expected = [f"part-{i:04d}-of-{total:04d}.json" for i in range(total)]
    if names != expected:
        raise ConfigError(f"the config directory {directory!r} must hold exactly "
                          f"{', '.join(expected)}; found {', '.join(names)}")
    parts = []
    digest = hashlib.sha256()
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as handle:
                raw = handle.read()
            document = orjson.loads(raw)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config part {name}: {exc}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"config part {name} must be a JSON object")
        parts.append(document)
        digest.update(raw)
    try:
        config = GatewayConfig.model_validate(merge_parts(parts))
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    return config, config.revision or digest.hexdigest()[:12]


def read_config(path: str) -> tuple[GatewayConfig, str]:
    """Read and validate a config file — or a directory of sharded parts, as the operator
    renders them — and return it with a revision (its `revision`, or a content hash)."""
    if os.path.isdir(path):
        return _read_parts(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path!r}: {exc.strerror}") from None
    config = parse_config(raw)
    return config, config.revision or hashlib.sha256(raw).hexdigest()[:12]


class ConfigHolder(Generic[T]):
    """Holds the served snapshot. Requests read `current` once and keep it for their lifetime,
    so in-flight requests finish on the config they started with."""

    def __init__(self) -> None:
        self.current: T | None = None
        self.last_error: str | None = None
        self.generation = 0

    def swap(self, snapshot: T) -> None:
        self.current = snapshot
        self.last_error = None
        self.generation += 1


@dataclass(frozen=True)
class _Fingerprint:
    parts: tuple[object, ...]


def _stat_tree(path: str) -> tuple[tuple[int, int, int] | None, ...]:
    """The config file — or, for a directory of parts, every entry in it."""
    if not os.path.isdir(path):
        return (_stat(path),)
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return (None,)
    return tuple(_stat(os.path.join(path, name)) for name in names)


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigWatcher(Generic[T]):
    """Loads the file into the holder now and whenever it (or a file it references) changes."""

    def __init__(
        self,
        path: str,
        holder: ConfigHolder[T],
        build: Callable[[GatewayConfig, str], T],
        watched_files: Callable[[GatewayConfig], list[str]] = lambda _: [],
        on_result: Callable[[str], None] = lambda _: None,
        interval: float = 0.25,
    ) -> None:
        self.path = path
        self.holder = holder
        self._build = build
        self._watched_files = watched_files
        self._on_result = on_result
        self.interval = interval
        self._extra: list[str] = []
        self._seen: _Fingerprint | None = None

    def _fingerprint(self) -> _Fingerprint:
        return _Fingerprint((_stat_tree(self.path), *(_stat(p) for p in self._extra)))

    def load(self) -> bool:
        """One read-validate-swap; True when the new config is now served.

        Files are stat-ed *before* they are read, so a write landing during the build is seen
        as a change on the next poll instead of being lost."""
        before = _stat_tree(self.path)
        self._seen = _Fingerprint((before, *(_stat(p) for p in self._extra)))
        try:
            config, revision = read_config(self.path)
            extra = self._watched_files(config)
            extra_seen = tuple(_stat(p) for p in extra)
            snapshot = self._build(config, revision)
        except ConfigError as exc:
            self._reject(str(exc))
            return False
        except Exception as exc:  # a bug must not kill hot reload: reject like a bad file
            log.exception("config could not be applied", extra={"event": "config_rejected"})
            self._reject(f"the config could not be applied ({type(exc).__name__}); see the log")
            return False
        self._extra = extra
        self._seen = _Fingerprint((before, *extra_seen))
        self.holder.swap(snapshot)
        log.info("config loaded", extra={"event": "config_loaded", "revision": revision,
                                          "path": self.path})
        self._on_result("loaded")
        return True

    def _reject(self, reason: str) -> None:
        self.holder.last_error = reason
        log.error("config rejected; still serving the last good config: %s", reason,
                  extra={"event": "config_rejected", "path": self.path})
        self._on_result("rejected")

    def changed(self) -> bool:
        return self._fingerprint() != self._seen

    async def run(self) -> None:
        """Poll for changes until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            if self.changed():
                self.load()
