"""open_store(): the config's `store` section → a Store. `redis://` (or `rediss://`, `unix://`)
selects Redis for many replicas; no URL selects the embedded file store, the standalone default."""

from __future__ import annotations

from urllib.parse import urlsplit

from tollgate.gateway.config.models import StoreSettings
from tollgate.gateway.store.base import Store, StoreOptions

__all__ = ["REDIS_SCHEMES", "open_store", "options_from_settings"]

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def options_from_settings(settings: StoreSettings) -> StoreOptions:
    """Retention and lease tunables, read from StoreSettings fields when the config declares
    them (leaseSeconds, ledgerRetentionDays, ledgerMaxRecords); defaults otherwise."""
    d = StoreOptions()
    return StoreOptions(
        lease_seconds=getattr(settings, "lease_seconds", None) or d.lease_seconds,
        ledger_max_age_days=getattr(settings, "ledger_retention_days", d.ledger_max_age_days),
        ledger_max_records=getattr(settings, "ledger_max_records", d.ledger_max_records),
    )


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

        return RedisStore(settings.url, options=options)
    from tollgate.gateway.store.embedded import EmbeddedStore

    return EmbeddedStore(settings.path, options=options)
