"""render() of every ProviderCredential type into the gateway's provider entry.

Each case is checked the whole way: the exact entry, the gateway's own GatewayConfig loading it
as the right provider model, the credential files holding the right Secret entries (through
the gateway's own `resolve`), and the gateway's adapter finding them usable — or unusable once
the files are gone, never falling back to the pods' own cloud identity.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.operator.objects import provider_credential, secret, virtual_key
from tollgate.gateway.config.loader import parse_config
from tollgate.gateway.config.models import (
    AnthropicProvider,
    AzureOpenAIProvider,
    BedrockProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    VertexProvider,
)
from tollgate.gateway.providers.credentials import resolve
from tollgate.gateway.providers.registry import build
from tollgate.operator.render import (
    RenderOptions,
    canonical_json,
    config_maps,
    dump_yaml,
    render,
)
from tollgate.operator.validate import ObjectRef, Reason, Severity

NS = "tollgate-system"
SA_KEY = json.dumps({
    "type": "service_account",
    "project_id": "acme-ml-prod",
    "client_email": "tollgate@acme-ml-prod.iam.gserviceaccount.com",
    "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n",
    "token_uri": "https://oauth2.googleapis.com/token",
})
AZURE = {"apiVersion": "2024-10-21",
         "deployments": [{"model": "gpt-4o-mini", "deployment": "mini-prod"},
                         {"model": "gpt-4o", "deployment": "gpt4o-prod"}]}


def _case(id_: str, credential: dict[str, Any], secrets: list[dict[str, Any]],
          model: type, entry: dict[str, Any], values: dict[str, str]) -> Any:
    return pytest.param(credential, secrets, model, entry, values, id=id_)


# (credential, its Secrets, gateway model, the rendered entry with {dir} for the credentials
# folder, {credential field: the value its file must hold})
CASES = [
    _case(
        "openai",
        provider_credential("openai", NS, openAI={"organization": "org-acme"}),
        [secret("openai-api-key", NS, apiKey="sk-openai")],
        OpenAIProvider,
        {"name": f"{NS}.openai", "type": "openai",
         "apiKey": {"file": "{dir}/tollgate-system.openai.apiKey"}, "organization": "org-acme"},
        {"api_key": "sk-openai"},
    ),
    _case(
        "openai-compatible",
        provider_credential("vllm", NS, "OpenAICompatible", models=["llama-3.3-70b"],
                            secretRef={"name": "vllm-token", "key": "token"}),
        [secret("vllm-token", NS, token="vllm-secret")],
        OpenAICompatibleProvider,
        {"name": f"{NS}.vllm", "type": "openai-compatible", "baseURL": "http://vllm.ml.svc:8000/v1",
         "apiKey": {"file": "{dir}/tollgate-system.vllm.apiKey"}, "models": ["llama-3.3-70b"]},
        {"api_key": "vllm-secret"},
    ),
    _case(
        "anthropic",
        provider_credential("anthropic", NS, "Anthropic", baseURL="https://claude.example.com",
                            anthropic={"anthropicVersion": "2023-06-01"},
                            timeouts={"firstByteSeconds": 90}),
        [secret("anthropic-api-key", NS, apiKey="sk-ant-secret\n")],
        AnthropicProvider,
        {"name": f"{NS}.anthropic", "type": "anthropic", "baseURL": "https://claude.example.com",
         "apiKey": {"file": "{dir}/tollgate-system.anthropic.apiKey"},
         "anthropicVersion": "2023-06-01", "timeouts": {"firstByteSeconds": 90}},
        {"api_key": "sk-ant-secret"},
    ),
    _case(
        "bedrock-static-keys",
        provider_credential("bedrock", NS, "AWSBedrock",
                            secretRef={"name": "aws", "key": "AWS_SECRET_ACCESS_KEY"},
                            baseURL="https://vpce-1.bedrock-runtime.eu-central-1.vpce.amazonaws.com",
                            awsBedrock={"region": "eu-central-1",
                                        "accessKeyIdKey": "AWS_ACCESS_KEY_ID",
                                        "sessionTokenKey": "AWS_SESSION_TOKEN"}),
        [secret("aws", NS, AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY="aws-secret",
                AWS_SESSION_TOKEN="aws-session", unrelated="never-copied")],
        BedrockProvider,
        {"name": f"{NS}.bedrock", "type": "bedrock", "region": "eu-central-1",
         "baseURL": "https://vpce-1.bedrock-runtime.eu-central-1.vpce.amazonaws.com",
         "accessKeyId": {"file": "{dir}/tollgate-system.bedrock.accessKeyId"},
         "secretAccessKey": {"file": "{dir}/tollgate-system.bedrock.secretAccessKey"},
         "sessionToken": {"file": "{dir}/tollgate-system.bedrock.sessionToken"}},
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "aws-secret",
         "session_token": "aws-session"},
    ),
    _case(
        "bedrock-default-key-names",
        provider_credential("bedrock", NS, "AWSBedrock",
                            secretRef={"name": "aws", "key": "secretAccessKey"},
                            awsBedrock={"region": "us-east-1"}),
        [secret("aws", NS, accessKeyId="AKIAEXAMPLE", secretAccessKey="aws-secret",
                sessionToken="not-asked-for")],
        BedrockProvider,
        {"name": f"{NS}.bedrock", "type": "bedrock", "region": "us-east-1",
         "accessKeyId": {"file": "{dir}/tollgate-system.bedrock.accessKeyId"},
         "secretAccessKey": {"file": "{dir}/tollgate-system.bedrock.secretAccessKey"}},
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "aws-secret"},
    ),
    _case(
        "bedrock-irsa",
        provider_credential("bedrock", NS, "AWSBedrock", awsBedrock={"region": "us-east-1"}),
        [],
        BedrockProvider,
        {"name": f"{NS}.bedrock", "type": "bedrock", "region": "us-east-1"},
        {},
    ),
    _case(
        "vertex-service-account",
        provider_credential("vertex", NS, "GCPVertexAI",
                            secretRef={"name": "vertex-sa", "key": "key.json"},
                            gcpVertexAI={"project": "acme-ml-prod", "region": "europe-west4"}),
        [secret("vertex-sa", NS, **{"key.json": SA_KEY})],
        VertexProvider,
        {"name": f"{NS}.vertex", "type": "vertex", "project": "acme-ml-prod",
         "region": "europe-west4", "publisher": "google",
         "serviceAccount": {"file": "{dir}/tollgate-system.vertex.serviceAccount"}},
        {"service_account": SA_KEY},
    ),
    _case(
        "vertex-claude-workload-identity",
        provider_credential("vertex-claude", NS, "GCPVertexAI",
                            gcpVertexAI={"project": "acme-ml-prod", "region": "global",
                                         "publisher": "Anthropic"}),
        [],
        VertexProvider,
        {"name": f"{NS}.vertex-claude", "type": "vertex", "project": "acme-ml-prod",
         "region": "global", "publisher": "anthropic"},
        {},
    ),
    _case(
        "azure-api-key",
        provider_credential("azure", NS, "AzureOpenAI", baseURL="https://acme.openai.azure.com",
                            azureOpenAI=AZURE),
        [secret("azure-api-key", NS, apiKey="azure-key")],
        AzureOpenAIProvider,
        {"name": f"{NS}.azure", "type": "azure-openai", "baseURL": "https://acme.openai.azure.com",
         "apiVersion": "2024-10-21",
         "deployments": [{"model": "gpt-4o", "deployment": "gpt4o-prod"},
                         {"model": "gpt-4o-mini", "deployment": "mini-prod"}],
         "apiKey": {"file": "{dir}/tollgate-system.azure.apiKey"}},
        {"api_key": "azure-key"},
    ),
    _case(
        "azure-entra-id-token",
        provider_credential("azure", NS, "AzureOpenAI", baseURL="https://acme.openai.azure.com",
                            secretRef={"name": "azure-token", "key": "token"},
                            azureOpenAI={**AZURE, "authentication": "EntraIDToken"}),
        [secret("azure-token", NS, token="eyJ0eXAi.entra.token")],
        AzureOpenAIProvider,
        {"name": f"{NS}.azure", "type": "azure-openai", "baseURL": "https://acme.openai.azure.com",
         "apiVersion": "2024-10-21",
         "deployments": [{"model": "gpt-4o", "deployment": "gpt4o-prod"},
                         {"model": "gpt-4o-mini", "deployment": "mini-prod"}],
         "entraToken": {"file": "{dir}/tollgate-system.azure.entraToken"}},
        {"entra_token": "eyJ0eXAi.entra.token"},
    ),
]

_CREDENTIAL_FIELDS = ("api_key", "access_key_id", "secret_access_key", "session_token",
                      "service_account", "entra_token")


def _with_dir(value: Any, folder: Path) -> Any:
    if isinstance(value, dict):
        return {k: _with_dir(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_dir(v, folder) for v in value]
    return value.replace("{dir}", str(folder)) if isinstance(value, str) else value


def _mount(credentials: dict[str, str], folder: Path) -> None:
    """What the kubelet does with the credentials Secret: one file per entry."""
    for key, value in credentials.items():
        (folder / key).write_bytes(base64.b64decode(value))


@pytest.mark.parametrize(("credential", "secrets", "model", "entry", "values"), CASES)
def test_each_type_renders_to_the_gateways_provider(
    tmp_path: Path, credential: dict[str, Any], secrets: list[dict[str, Any]], model: type,
    entry: dict[str, Any], values: dict[str, str],
) -> None:
    rendered = render([], [credential], secrets, RenderOptions(credentials_dir=str(tmp_path)))
    report = rendered.reports[ObjectRef("ProviderCredential", NS, credential["metadata"]["name"])]
    assert report.ready, report.problems
    assert rendered.config["providers"] == [_with_dir(entry, tmp_path)]

    # The gateway's own loader takes it, as the provider model of that type ...
    [provider] = parse_config(dump_yaml(rendered.config)).providers
    assert type(provider) is model
    # ... every credential reference it has is one this test expects, and nothing else is
    # copied out of the Secrets.
    assert {f for f in _CREDENTIAL_FIELDS if getattr(provider, f, None) is not None} == set(values)
    assert len(rendered.credentials) == len(values)
    _mount(rendered.credentials, tmp_path)
    for field, value in values.items():
        secret_ = resolve(getattr(provider, field))
        assert secret_ is not None and secret_.reveal() == value, field
    assert build(provider, None, ()).available  # type: ignore[arg-type]

    # Without the files the adapter is unavailable (the route fails over), never served with
    # the pod's own AWS or Google identity instead.
    for path in tmp_path.iterdir():
        path.unlink()
    assert build(provider, None, ()).available is (not values)  # type: ignore[arg-type]


def test_bedrock_reports_a_missing_secret_once_and_keeps_the_file_references() -> None:
    bedrock = provider_credential("bedrock", NS, "AWSBedrock",
                                  secretRef={"name": "aws", "key": "secretAccessKey"},
                                  awsBedrock={"region": "us-east-1",
                                              "sessionTokenKey": "sessionToken"})
    rendered = render([], [bedrock], [])
    report = rendered.reports[ObjectRef("ProviderCredential", NS, "bedrock")]
    assert report.rendered and not report.ready
    [problem] = report.problems
    assert str(problem) == 'spec.secretRef.name: Not found: "aws"'
    assert problem.reason is Reason.SECRET_NOT_FOUND and problem.retryable
    [entry] = rendered.config["providers"]
    assert {"accessKeyId", "secretAccessKey", "sessionToken"} <= set(entry)
    assert rendered.credentials == {}

    offline = render([], [bedrock], [], RenderOptions(secrets_complete=False))
    [problem] = offline.reports[ObjectRef("ProviderCredential", NS, "bedrock")].problems
    assert problem.severity is Severity.WARNING


def test_bedrock_missing_entries_are_reported_on_the_field_that_names_them() -> None:
    bedrock = provider_credential("bedrock", NS, "AWSBedrock",
                                  secretRef={"name": "aws", "key": "secretAccessKey"},
                                  awsBedrock={"region": "us-east-1",
                                              "sessionTokenKey": "sessionToken"})
    rendered = render([], [bedrock], [secret("aws", NS, secretAccessKey="aws-secret")])
    problems = rendered.reports[ObjectRef("ProviderCredential", NS, "bedrock")].problems
    assert [str(p) for p in problems] == [
        "spec.awsBedrock.accessKeyIdKey: Not found: \"accessKeyId\": Secret 'aws' has no such key",
        "spec.awsBedrock.sessionTokenKey: Not found: \"sessionToken\": Secret 'aws' has no such "
        "key",
    ]
    assert {p.reason for p in problems} == {Reason.SECRET_KEY_NOT_FOUND}
    assert set(rendered.credentials) == {f"{NS}.bedrock.secretAccessKey"}


@pytest.mark.parametrize("value", [b"REPLACE_ME-but-secret", b"[1, 2]", b'{"client_email": "x"}',
                                   b"\xff\xfe\x00-not-utf8"])
def test_a_vertex_key_that_is_no_service_account_key_is_reported_without_quoting_it(
    value: bytes,
) -> None:
    vertex = provider_credential("vertex", NS, "GCPVertexAI",
                                 secretRef={"name": "vertex-sa", "key": "key.json"},
                                 gcpVertexAI={"project": "acme-ml-prod", "region": "us-east5"})
    sa_secret = secret("vertex-sa", NS)
    sa_secret["data"]["key.json"] = base64.b64encode(value).decode()
    rendered = render([], [vertex], [sa_secret])
    report = rendered.reports[ObjectRef("ProviderCredential", NS, "vertex")]
    assert report.rendered and not report.ready  # served (and failing over) until it's fixed
    [problem] = report.problems
    assert str(problem) == (
        "spec.secretRef.key: Invalid value: \"key.json\": Secret 'vertex-sa' holds no "
        "service-account JSON key under it (a JSON object with `client_email` and "
        "`private_key`, as `gcloud iam service-accounts keys create` writes)")
    assert problem.reason is Reason.INVALID_SECRET and problem.retryable
    assert value.decode("latin-1") not in str(problem)
    assert "serviceAccount" in rendered.config["providers"][0]


def test_a_fallback_to_azure_must_name_one_of_its_deployments() -> None:
    azure = provider_credential("azure", NS, "AzureOpenAI", baseURL="https://acme.openai.azure.com",
                                azureOpenAI=AZURE)
    key = virtual_key("acme", fallbacks=[{"provider": "azure", "model": "gpt-4o"},
                                         {"provider": "azure", "model": "o3"}])
    rendered = render([key], [azure], [secret("azure-api-key", NS, apiKey="k")],
                      RenderOptions(shared_namespaces=(NS,)))
    problems = rendered.reports[ObjectRef("VirtualKey", "tenants", "acme")].problems
    assert [str(p) for p in problems] == [
        'spec.fallbacks[1].model: Not found: "o3": not in the `azureOpenAI.deployments` of '
        "ProviderCredential tollgate-system/azure"]
    assert problems[0].reason is Reason.MODEL_NOT_SERVED
    # An explicit `models` list is what the gateway routes on, so it wins.
    azure["spec"]["models"] = ["o3"]
    rendered = render([key], [azure], [secret("azure-api-key", NS, apiKey="k")],
                      RenderOptions(shared_namespaces=(NS,)))
    assert [str(p) for p in rendered.reports[ObjectRef("VirtualKey", "tenants",
                                                       "acme")].problems] == [
        'spec.fallbacks[0].model: Not found: "gpt-4o": not in the `models` of '
        "ProviderCredential tollgate-system/azure"]


def _every_type() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    credentials: list[dict[str, Any]] = []
    secrets: list[dict[str, Any]] = []
    seen: set[str] = set()
    for param in CASES:
        credential, case_secrets = param.values[0], param.values[1]
        name = credential["metadata"]["name"]
        if name in seen:
            continue
        seen.add(name)
        credentials.append(credential)
        secrets.extend(case_secrets)
    return credentials, secrets


def test_no_secret_material_reaches_the_config_of_any_type() -> None:
    credentials, secrets = _every_type()
    names = [c["metadata"]["name"] for c in credentials]
    key = virtual_key("acme", allowedProviders=names,
                      fallbacks=[{"provider": "anthropic", "model": "claude-sonnet-4-6"},
                                 {"provider": "bedrock", "model": "anthropic.claude-sonnet-4-6"},
                                 {"provider": "vertex", "model": "gemini-2.5-pro"},
                                 {"provider": "azure", "model": "gpt-4o"}])
    rendered = render([key], credentials, secrets, RenderOptions(shared_namespaces=(NS,)))
    assert all(r.ready for r in rendered.reports.values()), rendered.problems
    [entry] = rendered.config["virtualKeys"]
    assert entry["allowedProviders"] == sorted(f"{NS}.{n}" for n in names)
    visible = "".join(m["data"][k] for m in config_maps(rendered.config, "cfg", NS)
                      for k in m["data"])
    visible += "".join(str(p) for p in rendered.problems)
    for body in secrets:
        for value in body["data"].values():
            plain = base64.b64decode(value).decode().strip()
            assert plain not in visible
            assert value not in visible


def test_every_type_renders_deterministically_whatever_the_input_order() -> None:
    credentials, secrets = _every_type()
    first = render([], credentials, secrets)
    shuffled = [json.loads(json.dumps(c)) for c in credentials]
    random.Random(3).shuffle(shuffled)
    for body in shuffled:  # a list-map: the order of `deployments` means nothing
        if "azureOpenAI" in body["spec"]:
            body["spec"]["azureOpenAI"]["deployments"].reverse()
    second = render([], shuffled, list(reversed(secrets)))
    assert canonical_json(first.config) == canonical_json(second.config)
    assert first.revision == second.revision and first.credentials == second.credentials
