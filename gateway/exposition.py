"""/metrics exposition, in one process or across uvicorn worker processes.

With `--workers N` (N > 1) the CLI points PROMETHEUS_MULTIPROC_DIR at a fresh temporary folder
before any worker starts; prometheus-client then keeps every worker's values in memory-mapped
files there, and a scrape (answered by whichever worker gets it) merges them with
MultiProcessCollector: counters and histograms are summed over every worker that ever ran,
gauges follow their declared `multiprocess_mode` (budget gauges: the most recent value of a live
worker; the config revision: the highest of the live workers'). A worker marks itself dead on
shutdown (`worker_exited`), and each worker that starts marks the files of workers that are
gone (a crash, a restart by the supervisor) so their live gauges stop being exported.

`tollgate_config_info{revision}` is info-style: only revisions some live worker serves now are
exported (the values of replaced revisions are kept at 0 and filtered out here, because a
multi-process gauge cannot drop a label set).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from tollgate.gateway import metrics

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROC_ENV",
    "multiprocess_dir",
    "reap_dead_workers",
    "render",
    "served_revision",
    "worker_exited",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_INFO_METRICS = frozenset({"tollgate_config_info"})
_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")
_served: list[str] = []  # this process's served revision (at most one entry)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _CurrentOnly:
    """A collector view that drops the zero-valued samples of info-style gauges."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        for family in self._source.collect():
            if family.name in _INFO_METRICS:
                family.samples = [s for s in family.samples if s.value != 0]
            yield family


def render() -> bytes:
    """The exposition text for a scrape of this process (of every worker, in multi-process
    mode)."""
    if multiprocess_dir() is None:
        return generate_latest(_CurrentOnly(REGISTRY))
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)
    return generate_latest(_CurrentOnly(registry))


def served_revision(revision: str) -> None:
    """Record that this process now serves `revision` (tollgate_config_info)."""
    previous = _served[0] if _served else None
    if previous == revision:
        return
    if previous is not None:
        if multiprocess_dir() is None:
            metrics.CONFIG_INFO.remove(previous)
        else:
            metrics.CONFIG_INFO.labels(previous).set(0)
    metrics.CONFIG_INFO.labels(revision).set(1)
    _served[:] = [revision]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_workers() -> None:
    """Mark the metric files of worker processes that no longer exist as dead."""
    path = multiprocess_dir()
    if path is None:
        return
    pids = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_FILE.match(os.path.basename(name))
        if match:
            pids.add(int(match.group(1)))
    for pid in pids:
        if pid != os.getpid() and not _alive(pid):
            prometheus_multiprocess.mark_process_dead(pid, path)


def worker_exited() -> None:
    """This worker is shutting down: its live gauges stop counting."""
    path = multiprocess_dir()
    if path is not None:
        prometheus_multiprocess.mark_process_dead(os.getpid(), path)
