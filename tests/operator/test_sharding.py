"""shard() and config_maps(): ConfigMap-sized parts that merge back into the same config.

`merge` below is the reference for the gateway's loading side.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from tests.operator.objects import provider_credential, secret, virtual_key
from tollgate.gateway.config.models import GatewayConfig
from tollgate.operator.render import (
    CONFIG_PART_KEY,
    RenderOptions,
    canonical_json,
    config_maps,
    render,
    shard,
)


def merge(parts: list[str]) -> dict[str, Any]:
    """The loading rule: one revision, parts 0..n-1, list sections concatenated in part order,
    everything else taken from part 0 (it is identical wherever it repeats)."""
    documents = [json.loads(p) for p in parts]
    assert len({d["revision"] for d in documents}) == 1, "parts of different renders"
    merged: dict[str, Any] = {}
    for document in documents:
        for key, value in document.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            elif key in merged:
                assert merged[key] == value
            else:
                merged[key] = value
    return merged


def _config(keys: int) -> dict[str, Any]:
    rendered = render(
        [virtual_key(f"key-{i:05d}", customerId=f"customer-{i % 97}",
                     budget={"maxUSD": "100"}, metadata=[{"name": "team", "value": f"t{i}"}])
         for i in range(keys)],
        [provider_credential("openai")],
        [secret("openai-api-key", apiKey="sk")],
        RenderOptions(base={"store": {"url": "redis://redis:6379/0"}}),
    )
    return rendered.config


def test_a_small_config_is_one_part_and_a_complete_document() -> None:
    config = _config(3)
    [part] = shard(config)
    assert part == canonical_json(config)
    GatewayConfig.model_validate(json.loads(part))


@pytest.mark.parametrize("max_bytes", [2_000, 5_000, 20_000])
def test_parts_stay_under_the_limit_and_merge_back(max_bytes: int) -> None:
    config = _config(60)
    parts = shard(config, max_bytes)
    assert len(parts) > 1
    assert all(len(p.encode()) <= max_bytes for p in parts)
    assert canonical_json(merge(parts)) == canonical_json(config)
    GatewayConfig.model_validate(merge(parts))
    for part in parts[1:]:
        assert set(json.loads(part)) <= {"apiVersion", "kind", "revision", "providers",
                                         "virtualKeys"}


def test_sharding_is_deterministic() -> None:
    assert shard(_config(60), 5_000) == shard(_config(60), 5_000)


def test_an_entry_larger_than_a_part_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than"):
        shard(_config(2), 300)


def test_config_maps_are_labelled_and_keyed_by_part() -> None:
    config = _config(60)
    maps = config_maps(config, "tollgate-config", "tollgate-system", max_bytes=5_000)
    count = len(maps)
    assert count > 1
    for index, body in enumerate(maps):
        assert body["metadata"]["name"] == f"tollgate-config-{index}"
        labels = body["metadata"]["labels"]
        assert labels["tollgate.dev/config-revision"] == config["revision"]
        assert (labels["tollgate.dev/config-part"], labels["tollgate.dev/config-parts"]) == (
            str(index), str(count))
        assert list(body["data"]) == [CONFIG_PART_KEY.format(index=index, count=count)]
    merged = merge([next(iter(m["data"].values())) for m in maps])
    assert canonical_json(merged) == canonical_json(config)


def test_the_configmaps_are_valid_kubernetes_objects() -> None:
    for body in config_maps(_config(60), "tollgate-config", "tollgate-system", max_bytes=5_000):
        assert kubernetes_validate.validate(body, "1.37", strict=True) == "1.37"
