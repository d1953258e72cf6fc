"""The bedrock, vertex and azure-openai provider entries of the GatewayConfig contract."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.runtime import credential_files


def config(*providers: dict[str, Any]) -> GatewayConfig:
    return GatewayConfig.model_validate({"apiVersion": "tollgate.dev/v1alpha1",
                                         "kind": "GatewayConfig", "providers": list(providers)})


def test_the_three_cloud_providers_load_with_their_credentials_watched():
    loaded = config(
        {"name": "bedrock", "type": "bedrock", "region": "us-east-1",
         "accessKeyId": {"file": "/creds/ak"}, "secretAccessKey": {"file": "/creds/sk"},
         "sessionToken": {"env": "AWS_TOKEN"}},
        {"name": "bedrock-irsa", "type": "bedrock", "region": "eu-west-1"},
        {"name": "vertex", "type": "vertex", "project": "p1", "region": "global",
         "publisher": "anthropic", "serviceAccount": {"file": "/creds/sa.json"}},
        {"name": "azure", "type": "azure-openai", "baseURL": "https://acme.openai.azure.com",
         "apiVersion": "2024-10-21", "apiKey": {"file": "/creds/azure"},
         "deployments": [{"model": "gpt-4o", "deployment": "gpt4o-prod"}]})
    assert [p.type for p in loaded.providers] == ["bedrock", "bedrock", "vertex",
                                                  "azure-openai"]
    assert credential_files(loaded) == ["/creds/ak", "/creds/sk", "/creds/sa.json",
                                        "/creds/azure"]


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "b", "type": "bedrock", "region": "us-east-1",
      "accessKeyId": {"env": "A"}}, "set together"),
    ({"name": "b", "type": "bedrock", "region": "US_EAST"}, "region"),
    ({"name": "v", "type": "vertex", "project": "p", "publisher": "meta"}, "publisher"),
    ({"name": "a", "type": "azure-openai", "baseURL": "https://x", "apiVersion": "v",
      "deployments": []}, "deployments"),
    ({"name": "a", "type": "azure-openai", "baseURL": "https://x", "apiVersion": "v",
      "apiKey": {"env": "K"}, "entraToken": {"env": "T"},
      "deployments": [{"model": "m", "deployment": "d"}]}, "at most one"),
    ({"name": "a", "type": "azure-openai", "baseURL": "https://x", "apiVersion": "v",
      "deployments": [{"model": "m", "deployment": "d"}, {"model": "m", "deployment": "e"}]},
     "same `model` twice"),
], ids=["half-a-key-pair", "bad-region", "unknown-publisher", "no-deployments",
        "two-credentials", "duplicate-deployment"])
def test_invalid_entries_fail_at_load(entry: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        config(entry)
