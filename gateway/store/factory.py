"""open_store(): the config's `store` section → a Store. `redis://` (or `rediss://`, `unix://`)
selects Redis for many replicas; no URL selects the embedded file store, the standalone default."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit

from tollgate.gateway.config.models import StoreSettings
from tollgate.gateway.store.base import Store, StoreOptions
from tollgate.gateway.store.outbox import Outbox

__all__ = ["REDIS_SCHEMES", "StoreCache", "open_store", "options_from_settings"]

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def options_from_settings(settings: StoreSettings) -> StoreOptions:
    """Store tunables from config, mapped explicitly."""
    return StoreOptions(
        lease_seconds=settings.lease_seconds,
        ledger_max_age_days=settings.ledger_retention_days,
        ledger_max_records=settings.ledger_max_records,
    )


def _password(settings: StoreSettings) -> str | None:
    """The Redis password from a mounted Secret file (never inline in the config)."""
    if not settings.password_file:
        return None
    try:
        with open(settings.password_file, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError as exc:
        raise ValueError(f"cannot read store.passwordFile: {exc.strerror}") from None


def open_store(settings: StoreSettings, options: StoreOptions | None = None) -> Store:
    """Build the configured store. Nothing is contacted yet for Redis (the first call
    connects; use `await store.ping()` for readiness); the embedded file is opened now."""
    options = options or options_from_settings(settings)
    if settings.url:
        scheme = urlsplit(settings.url).scheme
        if scheme not in REDIS_SCHEMES:
            raise ValueError(
                f"store.url must be a redis://, rediss:// or unix:// URL, got scheme {scheme!r}"
            )
        from tollgate.gateway.store.redis import RedisStore

        return RedisStore(settings.url, options=options, password=_password(settings))
    from tollgate.gateway.store.embedded import EmbeddedStore

    return EmbeddedStore(settings.path, options=options)


class StoreCache:
    """Opens each distinct `store` section once, with its Outbox and the task that writes the
    outbox back: a reload that keeps the same settings keeps the same store (and connections).
    Must be called from inside the running event loop; the lifespan closes all at shutdown."""

    def __init__(self, base_dir: str = ".") -> None:
        self._base_dir = base_dir
        self._stores: dict[StoreSettings, tuple[Store, Outbox]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def __call__(self, settings: StoreSettings) -> tuple[Store, Outbox]:
        if not settings.url and not os.path.isabs(settings.path):
            # a relative embedded-store path is relative to the config file, not the cwd
            settings = settings.model_copy(
                update={"path": os.path.join(self._base_dir, settings.path)})
        opened = self._stores.get(settings)
        if opened is None:
            store, outbox = open_store(settings), Outbox()
            opened = self._stores[settings] = (store, outbox)
            self._tasks.append(asyncio.get_running_loop().create_task(
                outbox.run(store), name="tollgate-store-outbox"))
        return opened

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for store, outbox in self._stores.values():
            if len(outbox):
                await outbox.flush(store)
            await store.close()
        self._stores.clear()
