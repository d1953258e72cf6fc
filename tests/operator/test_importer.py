"""`tollgate import --from litellm|bifrost`: fixture configs → manifests that validate."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from tollgate.gateway.cli import main as tollgate_main
from tollgate.operator.cli import validate_main
from tollgate.operator.importer import (
    ImportError_,
    from_bifrost,
    from_litellm,
    import_main,
    load_source,
)
from tollgate.operator.keys import token_sha256

TESTDATA = Path(__file__).parent / "testdata" / "import"
LITELLM = TESTDATA / "litellm.yaml"
BIFROST = TESTDATA / "bifrost.json"
NS = "tollgate-system"


def _run(kind: str, path: Path, tmp_path: Path) -> tuple[int, Path, str]:
    err = io.StringIO()
    out = tmp_path / "out"
    code = import_main(kind, str(path), output=str(out), namespace=NS, stderr=err)
    return code, out, err.getvalue()


def _specs(out: Path) -> dict[tuple[str, str], dict]:
    objects = [o for f in sorted(out.glob("*.yaml")) for o in yaml.safe_load_all(f.read_text())]
    return {(o["kind"], o["metadata"]["name"]): o["spec"] for o in objects}


def _text(out: Path) -> str:
    return "".join(f.read_text() for f in sorted(out.glob("*.yaml")))


@pytest.mark.parametrize(("kind", "path"), [("litellm", LITELLM), ("bifrost", BIFROST)])
def test_output_validates_and_holds_no_secret_values(kind: str, path: Path,
                                                     tmp_path: Path) -> None:
    code, out, err = _run(kind, path, tmp_path)
    assert code == 0
    text = _text(out)
    assert "INLINE" not in text and "sk-" not in text
    assert "inline secret not imported, create a Secret" in err
    report = io.StringIO()
    assert validate_main(out, namespace=NS, shared_namespaces=[NS], stdout=report) == 0
    assert " 0 errors" in report.getvalue()
    # The only warnings are Secrets that live outside the folder (and a generated token).
    for line in report.getvalue().splitlines()[:-1]:
        assert "warning:" in line and ("must exist in the cluster" in line
                                       or "generates the token" in line), line


def test_litellm_providers(tmp_path: Path) -> None:
    _, out, err = _run("litellm", LITELLM, tmp_path)
    specs = _specs(out)
    assert sorted(name for _, name in specs) == ["anthropic", "azure", "bedrock", "hosted-vllm",
                                                 "openai", "vertex"]
    pc = {name: spec for (_, name), spec in specs.items()}
    assert pc["openai"] == {"type": "OpenAI", "secretRef": {"name": "openai-api-key",
                                                            "key": "apiKey"},
                            "models": ["gpt-4o"]}
    # Two Azure deployments behind one endpoint and key: one credential.
    assert pc["azure"]["azureOpenAI"] == {"apiVersion": "2024-10-21", "deployments": [
        {"model": "gpt-4o", "deployment": "gpt4o-prod"},
        {"model": "gpt-4o-mini", "deployment": "gpt4o-mini-prod"}]}
    assert pc["azure"]["secretRef"] == {"name": "azure-api-key", "key": "apiKey"}
    assert pc["anthropic"]["secretRef"] == {"name": "anthropic-api-key", "key": "apiKey"}
    assert pc["anthropic"]["timeouts"] == {"totalSeconds": 60}
    assert pc["bedrock"] == {"type": "AWSBedrock", "awsBedrock": {"region": "us-east-1"},
                             "models": ["anthropic.claude-3-haiku-20240307-v1:0"]}
    assert pc["vertex"]["gcpVertexAI"] == {"project": "acme-ml-prod", "region": "europe-west4",
                                           "publisher": "Google"}
    assert pc["hosted-vllm"] == {"type": "OpenAICompatible",
                                 "baseURL": "http://vllm.ml.svc:8000/v1",
                                 "models": ["llama-3.3-70b"]}
    assert not (out / "virtual-keys.yaml").exists()
    for expected in ("provider 'cohere' not mapped", "litellm_params.rpm not mapped",
                     "load balancing across 2 deployments",
                     "router_settings.fallbacks: gpt-4o → claude-sonnet not mapped",
                     "router_settings.routing_strategy: not mapped",
                     "general_settings.master_key: not mapped",
                     "litellm_settings.drop_params: not mapped",
                     "alias 'claude-sonnet' → 'claude-3-5-sonnet-20241022' not mapped",
                     "LiteLLM keeps them in its database"):
        assert expected in err, expected
    assert all(line.startswith("warning: ") for line in err.splitlines())


def test_bifrost_providers_and_virtual_keys(tmp_path: Path) -> None:
    _, out, err = _run("bifrost", BIFROST, tmp_path)
    specs = _specs(out)
    assert specs[("ProviderCredential", "bedrock")] == {
        "type": "AWSBedrock", "secretRef": {"name": "aws-keys", "key": "secretAccessKey"},
        "awsBedrock": {"region": "eu-central-1", "accessKeyIdKey": "accessKeyId"},
        "models": ["anthropic.claude-3-haiku-20240307-v1:0"]}
    assert specs[("ProviderCredential", "vertex")]["secretRef"] == {
        "name": "vertex-credentials", "key": "key.json"}
    assert specs[("ProviderCredential", "ollama")]["baseURL"] == "http://ollama.ml.svc:11434/v1"
    assert specs[("ProviderCredential", "openai")]["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert ("ProviderCredential", "cohere") not in specs
    assert specs[("VirtualKey", "acme-prod")] == {
        "customerId": "acme_corp",
        "tokenSHA256": token_sha256("sk-bf-INLINE-TOKEN-do-not-copy"),
        "budget": {"maxUSD": "500.5", "period": "Monthly"},
        "rateLimit": {"requestsPerMinute": 600},
        "allowedProviders": ["openai", "anthropic"],
        "allowedModels": ["gpt-4o"],
    }
    assert specs[("VirtualKey", "ci")] == {"enabled": False}
    for expected in ("providers.cohere: provider not mapped",
                     "network_config.max_retries: not mapped",
                     "token limit 100000 per '1h' not mapped",
                     "budget 'b-odd' (reset_duration '3d') not mapped",
                     "team_id not mapped", "governance.teams: not mapped",
                     "client: not mapped"):
        assert expected in err, expected


def test_same_credential_twice_is_one_object_and_names_stay_unique() -> None:
    entry = {"model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}
    other = {"model": "openai/gpt-4o-mini", "api_key": "os.environ/OPENAI_KEY_TEAM_B"}
    imported = from_litellm({"model_list": [
        {"model_name": "gpt-4o", "litellm_params": entry},
        {"model_name": "gpt-4o", "litellm_params": dict(entry)},
        {"model_name": "gpt-4o-mini", "litellm_params": other},
    ]})
    names = [o["metadata"]["name"] for o in imported.provider_credentials]
    assert names == ["openai", "openai-2"]
    assert imported.provider_credentials[1]["spec"]["secretRef"]["name"] == "openai-key-team-b"


def test_stdout_and_the_tollgate_subcommand(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert tollgate_main(["import", "--from", "bifrost", str(BIFROST)]) == 0
    captured = capsys.readouterr()
    kinds = [o["kind"] for o in yaml.safe_load_all(captured.out)]
    assert kinds.count("VirtualKey") == 2 and "INLINE" not in captured.out
    assert "warning: providers.cohere: provider not mapped" in captured.err


def test_unreadable_input_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    err = io.StringIO()
    assert import_main("bifrost", str(broken), stderr=err) == 1
    assert "cannot parse" in err.getvalue()
    assert import_main("litellm", str(tmp_path / "missing.yaml"), stderr=io.StringIO()) == 1
    with pytest.raises(ImportError_):
        from_bifrost(load_source("bifrost", "[]"))
