"""VirtualKey handlers: keep the index current, wake the render loop, hold deletion until the
key is out of the gateway's config.

Thin on purpose (STYLE pattern 12): the render loop computes conditions, token Secrets and the
config from the indexes, so nothing here reads the API or another object.
"""

from __future__ import annotations

from typing import Any

import kopf

from tollgate.operator.models import GROUP, VERSION
from tollgate.operator.reconcile import Reconciler, index_resource

__all__ = ["RESOURCE", "release_key", "virtual_key_changed", "virtual_keys"]

RESOURCE = (GROUP, VERSION, "virtualkeys")


@kopf.index(*RESOURCE)
def virtual_keys(body: kopf.Body, namespace: str | None, name: str, **_: Any
                 ) -> dict[tuple[str | None, str], dict[str, Any]]:
    """Every VirtualKey, by (namespace, name), in the small shape the render loop reads."""
    return {(namespace, name): index_resource(body)}


@kopf.on.event(*RESOURCE)
def virtual_key_changed(memo: kopf.Memo, **_: Any) -> None:
    """Any change, deletion included: the next render pass picks it up."""
    reconciler: Reconciler = memo.reconciler
    reconciler.request()


RELEASE_WAIT_SECONDS = 10.0


@kopf.on.delete(*RESOURCE)
async def release_key(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    """The finalizer's work: the VirtualKey goes only once no written config serves it, so a
    deleted key stops working before its object disappears.

    Waits for the render loop's next write (not a sleep: it returns the moment the config is
    written), and hands a slow write back to kopf's retries instead of waiting longer.
    """
    reconciler: Reconciler = memo.reconciler
    if not await reconciler.released(namespace or "", name, RELEASE_WAIT_SECONDS):
        raise kopf.TemporaryError("the gateway config still serves this key; waiting for the "
                                  "next render", delay=1)
