"""`tollgate render -f` and `tollgate validate -f` on GitOps folders under testdata/."""

from __future__ import annotations

import io
from pathlib import Path

from tollgate.gateway.config.loader import parse_config
from tollgate.operator.cli import load_manifests, render_main, validate_main
from tollgate.operator.validate import ObjectRef

TESTDATA = Path(__file__).parent / "testdata"
GOOD = TESTDATA / "gitops"
BROKEN = TESTDATA / "gitops-broken"
SHARED = ["tollgate-system"]


def test_the_loader_finds_our_kinds_and_ignores_the_rest() -> None:
    found = load_manifests(GOOD)
    assert found.errors == []
    assert sorted(found.sources) == [
        ObjectRef("ProviderCredential", "tollgate-system", "openai"),
        ObjectRef("ProviderCredential", "tollgate-system", "vllm"),
        ObjectRef("Secret", "default", "acme-dev-token"),
        ObjectRef("Secret", "tollgate-system", "openai-api-key"),
        ObjectRef("VirtualKey", "default", "acme-dev"),
        ObjectRef("VirtualKey", "default", "acme-prod"),
        ObjectRef("VirtualKey", "globex", "globex"),  # from a `kind: List`
    ]
    assert str(found.sources[ObjectRef("VirtualKey", "default", "acme-dev")]).endswith(
        "tenants/acme.yaml:17")
    # Timestamps stay strings, as kubectl sends them.
    acme = next(v for v in found.virtual_keys if v["metadata"]["name"] == "acme-prod")
    assert acme["spec"]["expiresAt"] == "2027-01-01T00:00:00Z"


def test_objects_without_a_namespace_get_the_given_one() -> None:
    found = load_manifests(GOOD, namespace="tenants")
    assert ObjectRef("VirtualKey", "tenants", "acme-prod") in found.sources


def test_render_prints_the_config_the_gateway_would_serve() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert render_main(GOOD, shared_namespaces=SHARED, stdout=out, stderr=err) == 0
    assert err.getvalue() == ""
    config = parse_config(out.getvalue())
    assert [k.id for k in config.virtual_keys] == ["default.acme-dev", "default.acme-prod",
                                                   "globex.globex"]
    assert [p.name for p in config.providers] == ["tollgate-system.openai",
                                                  "tollgate-system.vllm"]
    assert "sk-test-not-a-real-key" not in out.getvalue()
    assert "tg-acme-dev" not in out.getvalue()


def test_render_output_is_byte_identical_across_runs() -> None:
    outputs = []
    for _ in range(2):
        out = io.StringIO()
        render_main(GOOD, shared_namespaces=SHARED, stdout=out, stderr=io.StringIO())
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]


def test_validate_passes_a_clean_folder() -> None:
    out = io.StringIO()
    assert validate_main(GOOD, shared_namespaces=SHARED, stdout=out) == 0
    assert out.getvalue() == "5 objects checked: 0 errors, 0 warnings\n"


def test_validate_reports_every_problem_with_file_line_and_field() -> None:
    out = io.StringIO()
    assert validate_main(BROKEN, stdout=out) == 1
    lines = out.getvalue().splitlines()
    keys = f"{BROKEN}/keys.yaml"
    expected = [
        f"{BROKEN}/broken.yaml:4: error: not valid YAML: expected ',' or '}}', but got ':'",
        f"{BROKEN}/credentials.yaml:1: warning: ProviderCredential default/openai: "
        'spec.secretRef.name: Not found: "openai-api-key": not among the manifests; it must '
        "exist in the cluster",
        f"{BROKEN}/credentials.yaml:8: error: ProviderCredential default/anthropic: spec.openAI: "
        "Forbidden: `openAI` may only be set when `type` is 'OpenAI'",
        f'{keys}:1: error: VirtualKey default/acme-prod: spec.allowedProviders[1]: Invalid value: '
        "\"anthropic\": ProviderCredential default/anthropic is not served: its spec is invalid",
        f'{keys}:1: error: VirtualKey default/acme-prod: spec.allowedProviders[2]: Not found: '
        "\"bedrock\": no ProviderCredential of that name in namespace 'default'",
        f'{keys}:1: error: VirtualKey default/acme-prod: spec.fallbacks[1].provider: Not found: '
        "\"bedrock\": no ProviderCredential of that name in namespace 'default'",
        f"{keys}:1: error: VirtualKey default/acme-prod: spec.fallbacks[2].provider: Invalid "
        "value: \"anthropic\": ProviderCredential default/anthropic is not served: its spec is "
        "invalid",
        f"{keys}:12: error: VirtualKey default/over-precise: spec.budget.maxUSD: Invalid value: "
        "\"string\": `maxUSD` must be a non-negative decimal string with at most 6 decimal "
        "places, such as '12000' or '12.50'",
        f'{keys}:19: error: VirtualKey default/future: apiVersion: Unsupported value: '
        '"tollgate.dev/v1beta1": supported values: "tollgate.dev/v1alpha1"',
        f"{keys}:24: warning: VirtualKey default/generated-token: spec.tokenSecretRef: Required "
        "value: the operator generates the token into Secret 'tollgate-vk-generated-token' in "
        "the cluster; set `tokenSHA256` to render this key offline",
        f"{BROKEN}/zz-duplicate.yaml:1: error: VirtualKey default/generated-token: "
        'metadata.name: Duplicate value: "generated-token": also defined at '
        f"{keys}:24",
        "5 objects checked: 9 errors, 2 warnings",
    ]
    assert lines == expected


def test_require_secrets_turns_a_missing_secret_into_an_error() -> None:
    out = io.StringIO()
    validate_main(BROKEN, require_secrets=True, stdout=out)
    assert (f"{BROKEN}/credentials.yaml:1: error: ProviderCredential default/openai: "
            'spec.secretRef.name: Not found: "openai-api-key"') in out.getvalue()


def test_render_of_a_broken_folder_prints_what_can_be_served_and_fails() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert render_main(BROKEN, stdout=out, stderr=err) == 1
    config = parse_config(out.getvalue())
    assert [k.id for k in config.virtual_keys] == ["default.acme-prod"]
    assert config.virtual_keys[0].allowed_providers == ("default.openai",)
    assert "spec.fallbacks[1].provider: Not found: \"bedrock\"" in err.getvalue()


def test_a_missing_folder_is_an_error() -> None:
    out = io.StringIO()
    assert validate_main(TESTDATA / "nope", stdout=out) == 1
    assert "no such file or folder" in out.getvalue()
