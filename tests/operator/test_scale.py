"""The issue's scale target: 10,000 VirtualKeys render into ConfigMaps under the 1 MiB limit.

Correctness only; the time is measured outside the test suite (no timing assertions here).
"""

from __future__ import annotations

import json

from tests.operator.objects import provider_credential, secret, virtual_key
from tests.operator.test_sharding import merge
from tollgate.gateway.config.models import GatewayConfig
from tollgate.operator.render import RenderOptions, config_maps, render

KEYS = 10_000
MIB = 1024 * 1024


def test_ten_thousand_keys_fit_in_configmaps_and_merge_back() -> None:
    namespaces = [f"tenant-{i:03d}" for i in range(100)]
    keys = [
        virtual_key(
            f"key-{i:05d}", namespace=namespaces[i % 100], customerId=f"customer-{i % 1000}",
            budget={"maxUSD": "1000.50", "period": "Monthly"},
            rateLimit={"requestsPerMinute": 600, "tokensPerMinute": 400_000},
            fallbacks=[{"provider": "openai", "model": "gpt-4o"},
                       {"provider": "vllm", "model": "llama-3.3-70b"}],
            metadata=[{"name": "billingCode", "value": f"BC-{i:05d}"}],
        )
        for i in range(KEYS)
    ]
    credentials = [provider_credential("openai", "tollgate-system"),
                   provider_credential("vllm", "tollgate-system", "OpenAICompatible")]
    rendered = render(keys, credentials,
                      [secret("openai-api-key", "tollgate-system", apiKey="sk")],
                      RenderOptions(shared_namespaces=("tollgate-system",)))
    assert len(rendered.config["virtualKeys"]) == KEYS
    assert not rendered.problems
    maps = config_maps(rendered.config, "tollgate-config", "tollgate-system")
    assert len(maps) > 1
    for body in maps:
        assert len(json.dumps(body).encode()) < MIB
    merged = merge([next(iter(m["data"].values())) for m in maps])
    assert len(GatewayConfig.model_validate(merged).virtual_keys) == KEYS
