"""The gateway watches its ConfigMaps through the API: a new revision is served within a second,
a half-written set of parts never is, and the mounted directory is the fallback."""

from __future__ import annotations

import time

import httpx

from tests.k8s_gateway.conftest import Cluster
from tests.k8s_gateway.support import (
    CONFIG_NAME,
    NAMESPACE,
    KubeGateway,
    config_map_bodies,
    gateway_config,
    key_entry,
    put_config_maps,
    token_for,
    write_parts,
)
from tests.operator_e2e.api import CONFIG_MAP

UPSTREAM = "http://127.0.0.1:9/v1"  # never called: these tests only ask /v1/key/info


def _knows(url: str, key_id: str) -> bool:
    response = httpx.get(url + "/v1/key/info", timeout=2.0,
                         headers={"Authorization": f"Bearer {token_for(key_id)}"})
    return response.status_code == 200


def _rejected(gateway: KubeGateway) -> list[dict[str, object]]:
    """Rejections of what the ConfigMaps held (not of the empty mounted folder at start)."""
    return [e for e in gateway.events("config_rejected") if e.get("source") == "configmaps"]


def _keys(count: int, prefix: str = "tenants.k") -> list[dict[str, object]]:
    # Padded metadata makes the config big enough to need several small parts.
    return [key_entry(f"{prefix}{i:03d}", metadata={"note": "x" * 200}) for i in range(count)]


def test_a_configmap_update_is_served_within_a_second(cluster: Cluster) -> None:
    first = gateway_config(UPSTREAM, [key_entry("tenants.first")])
    put_config_maps(cluster.api, config_map_bodies(first))
    gateway = cluster.start_gateway("gw-a", interval=0)
    # Listed before serving: the first answer already comes from the ConfigMaps.
    assert gateway.revision() == first["revision"]
    assert _knows(gateway.url, "tenants.first")

    observed = []
    for round_ in range(3):
        key_id = f"tenants.new-{round_}"
        config = gateway_config(UPSTREAM, [key_entry("tenants.first"), key_entry(key_id)])
        started = time.monotonic()
        put_config_maps(cluster.api, config_map_bodies(config))
        cluster.wait(lambda k=key_id: _knows(gateway.url, k), f"{key_id} served", timeout=5,
                     interval=0.01)
        observed.append(time.monotonic() - started)
        assert gateway.revision() == config["revision"]
    assert max(observed) < 1.0, observed
    assert _rejected(gateway) == []


def test_a_half_updated_set_of_parts_is_not_served(cluster: Cluster) -> None:
    old = gateway_config(UPSTREAM, _keys(30))
    old_maps = config_map_bodies(old, max_bytes=4096)
    assert len(old_maps) >= 3
    put_config_maps(cluster.api, old_maps)
    gateway = cluster.start_gateway("gw-a", interval=0)
    assert gateway.revision() == old["revision"]

    new = gateway_config(UPSTREAM, _keys(30, prefix="tenants.n"))
    new_maps = config_map_bodies(new, max_bytes=4096)
    assert len(new_maps) == len(old_maps)
    put_config_maps(cluster.api, new_maps[:-1])  # every part but the last one
    time.sleep(1.0)
    assert gateway.revision() == old["revision"]
    assert _knows(gateway.url, "tenants.k000") and not _knows(gateway.url, "tenants.n000")
    assert _rejected(gateway) == []  # mid-update is not an error

    started = time.monotonic()
    put_config_maps(cluster.api, new_maps[-1:])
    cluster.wait(lambda: gateway.revision() == new["revision"], "the whole new set served",
                 timeout=5, interval=0.01)
    assert time.monotonic() - started < 1.0
    assert _knows(gateway.url, "tenants.n029") and not _knows(gateway.url, "tenants.k000")

    # Fewer parts: the operator writes part 0 of 1, then deletes the stale parts; the set is
    # whole as soon as part 0 is written.
    small = gateway_config(UPSTREAM, [key_entry("tenants.small")])
    put_config_maps(cluster.api, config_map_bodies(small))
    cluster.wait(lambda: gateway.revision() == small["revision"], "the one-part set served",
                 timeout=5)
    for body in new_maps[1:]:
        cluster.api.delete(CONFIG_MAP, NAMESPACE, body["metadata"]["name"])
    time.sleep(0.3)
    assert gateway.revision() == small["revision"]

    # A whole set that is invalid is rejected; the last good config keeps serving.
    broken = gateway_config(UPSTREAM, [key_entry("tenants.small"), key_entry("tenants.small")])
    put_config_maps(cluster.api, config_map_bodies(broken))
    cluster.wait(lambda: _rejected(gateway), "the broken set rejected")
    assert gateway.revision() == small["revision"]
    ready = httpx.get(gateway.url + "/readyz", timeout=2).json()
    assert "lastReloadError" in ready


def test_the_mounted_directory_is_the_fallback(cluster: Cluster) -> None:
    mounted = cluster.directory / "mounted"
    on_disk = gateway_config(UPSTREAM, [key_entry("tenants.disk")])
    in_api = gateway_config(UPSTREAM, [key_entry("tenants.api")])
    write_parts(mounted, on_disk)
    put_config_maps(cluster.api, config_map_bodies(in_api))

    # The API fails at start-up: the gateway serves the mounted copy ...
    cluster.proxy.fail(500, path="/configmaps")
    gateway = cluster.start_gateway("gw-a", interval=0, config_dir=mounted)
    assert gateway.revision() == on_disk["revision"]
    # ... and switches to the ConfigMaps once the API answers.
    cluster.proxy.heal()
    cluster.wait(lambda: gateway.revision() == in_api["revision"], "the API's config served",
                 timeout=10)

    # The watch breaks and the API keeps failing: a new revision in the mounted copy (the
    # kubelet's refresh) is served ...
    cluster.proxy.fail(500, path="/configmaps")
    cluster.proxy.cut_watches()
    cluster.wait(lambda: gateway.events("config_watch_down"), "the watch noticed as down")
    newer = gateway_config(UPSTREAM, [key_entry("tenants.newer")])
    write_parts(mounted, newer)
    cluster.wait(lambda: gateway.revision() == newer["revision"], "the mounted copy served")
    # ... but an older one, served before, is not brought back.
    write_parts(mounted, on_disk)
    time.sleep(1.0)
    assert gateway.revision() == newer["revision"]

    # The API is back: the ConfigMaps win again.
    latest = gateway_config(UPSTREAM, [key_entry("tenants.latest")])
    cluster.proxy.heal()
    put_config_maps(cluster.api, config_map_bodies(latest))
    cluster.wait(lambda: gateway.revision() == latest["revision"], "the API's config served "
                 "again", timeout=15)
    assert gateway.events("config_watch_up")
    assert CONFIG_NAME in gateway.logs()


def test_a_part_close_to_the_configmap_size_limit_arrives_through_the_watch(
        cluster: Cluster) -> None:
    small = gateway_config(UPSTREAM, [key_entry("tenants.first")])
    put_config_maps(cluster.api, config_map_bodies(small))
    gateway = cluster.start_gateway("gw-a", interval=0)
    assert gateway.revision() == small["revision"]

    big = gateway_config(UPSTREAM, [key_entry(f"tenants.big{i:03d}",
                                              metadata={"note": f"{i:03d}" + "x" * 2500})
                                    for i in range(300)])
    [body] = config_map_bodies(big)
    assert len(next(iter(body["data"].values()))) > 750_000  # one watch event, one long line
    put_config_maps(cluster.api, [body])
    cluster.wait(lambda: gateway.revision() == big["revision"], "the big part served",
                 timeout=10)
    assert _knows(gateway.url, "tenants.big299")
