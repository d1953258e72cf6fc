"""The operator's identity and its render loop, set up when kopf starts (STYLE pattern 14).

- finalizer `tollgate.dev/finalizer`; handler progress and the diff-base in `tollgate.dev/`
  annotations, never in `status` (status is the API the users read);
- Events only when posted explicitly (no log line becomes an Event);
- kopf peering off: `__main__` holds a coordination.k8s.io Lease instead, and a standby replica
  never starts kopf (see `leader.py` for why);
- `memo.reconciler`: the render loop, fed by the three indexes, run as a task until cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from tollgate.operator import kube
from tollgate.operator.models import GROUP
from tollgate.operator.reconcile import Indexes, Reconciler

__all__ = ["FINALIZER", "configure", "stop_render_loop"]

FINALIZER = f"{GROUP}/finalizer"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo,
                    logger: logging.Logger | logging.LoggerAdapter[Any], **indexes: Any) -> None:
    """`indexes` are kopf's, named after the index functions in `handlers`."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    settings.peering.standalone = True
    settings.peering.priority = 0
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10

    # Read before anything starts: if the API fails here, kopf retries this handler whole.
    empty = not await _any_custom_resources(memo)
    reconciler = Reconciler(memo.options, memo.client, memo.identity, Indexes(
        indexes["virtual_keys"], indexes["provider_credentials"], indexes["secrets"]))
    memo.reconciler = reconciler
    memo.render_task = asyncio.create_task(reconciler.run(), name="tollgate render loop")
    if empty:
        reconciler.request()  # nothing will send an event: write the empty config now
    logger.info("tollgate operator %s: watching %s, writing %s/%s-*", memo.identity,
                ", ".join(memo.options.watched_namespaces) or "all namespaces",
                memo.options.target_namespace, memo.options.config_name)


async def _any_custom_resources(memo: kopf.Memo) -> bool:
    """Whether a VirtualKey or ProviderCredential exists in a watched namespace. Without one,
    no handler ever runs, so the loop must be woken here; with one, its first event wakes the
    loop after every index is filled (a render from half-filled indexes would drop keys)."""
    namespaces: tuple[str | None, ...] = memo.options.watched_namespaces or (None,)
    for kind in (kube.VIRTUAL_KEYS, kube.PROVIDER_CREDENTIALS):
        for namespace in namespaces:
            if namespace is not None and any(c in namespace for c in "*?[!"):
                return True  # a glob: can't list it cheaply; an event will come
            if await memo.client.list(kind, namespace):
                return True
    return False


@kopf.on.cleanup()
async def stop_render_loop(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = getattr(memo, "render_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    stop_flag: asyncio.Event | None = getattr(memo, "stop_flag", None)
    if stop_flag is not None:
        stop_flag.set()  # kopf stops by its own signal handling; release its flag waiter too
