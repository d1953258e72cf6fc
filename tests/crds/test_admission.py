"""Table-driven admission cases: one manifest per file under testdata/<plural>/.

Each case goes through two validators that must agree: the CRD as the API server would apply
it (jsonschema + cel-python, tests/support/crdvalidate.py) and the operator's models with the
Python twins of the CEL rules (what `tollgate validate` runs offline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.crdvalidate import validator_for
from tollgate.operator.cli import load_manifests
from tollgate.operator.validate import check_object

TESTDATA = Path(__file__).parent / "testdata"

# file (relative to testdata/) → a substring of the expected error; None: must be admitted.
CASES: dict[str, str | None] = {
    "virtualkeys/good-minimal.yaml": None,
    "virtualkeys/good-full.yaml": None,
    "virtualkeys/good-gitops-hash.yaml": None,
    "virtualkeys/bad-fallback-not-allowed.yaml":
        "spec.fallbacks: Invalid value: \"object\": every `fallbacks[].provider` must be listed "
        "in `allowedProviders` when `allowedProviders` is set",
    "virtualkeys/bad-maxusd-seven-places.yaml":
        "spec.budget.maxUSD: Invalid value: \"string\": `maxUSD` must be a non-negative decimal "
        "string with at most 6 decimal places",
    "virtualkeys/bad-maxusd-negative.yaml":
        "`maxUSD` must be a non-negative decimal string with at most 6 decimal places",
    "virtualkeys/bad-maxusd-number.yaml":
        "spec.budget.maxUSD: Invalid value: \"integer\": must be of type string",
    "virtualkeys/bad-period-lowercase.yaml":
        "spec.budget.period: Unsupported value: \"monthly\": supported values: \"Daily\", "
        "\"Weekly\", \"Monthly\", \"Total\"",
    "virtualkeys/bad-token-both.yaml":
        "spec.tokenSHA256: Forbidden: `tokenSecretRef` and `tokenSHA256` may not both be set",
    "virtualkeys/bad-token-sha-uppercase.yaml": "spec.tokenSHA256: Invalid value: \"E7AAB4",
    "virtualkeys/bad-ratelimit-empty.yaml":
        "spec.rateLimit: Invalid value: \"object\": at least one of `requestsPerMinute`, "
        "`tokensPerMinute` or `maxConcurrent` must be set",
    "virtualkeys/bad-ratelimit-zero.yaml":
        "spec.rateLimit.requestsPerMinute: Invalid value: 0: should be greater than or equal to 1",
    "virtualkeys/bad-ratelimit-string.yaml":
        "spec.rateLimit.requestsPerMinute: Invalid value: \"string\": must be of type integer",
    "virtualkeys/bad-duplicate-fallback.yaml":
        "spec.fallbacks: Invalid value: \"array\": `fallbacks` may not list the same `provider` "
        "and `model` twice",
    "virtualkeys/bad-duplicate-metadata.yaml":
        "spec.metadata[1]: Duplicate value: {\"name\": \"billingCode\"}",
    "virtualkeys/bad-duplicate-allowed-model.yaml":
        "spec.allowedModels[1]: Duplicate value: \"gpt-4o\"",
    "virtualkeys/bad-unknown-field.yaml":
        "spec.fallback: Forbidden: field not declared in schema",
    "virtualkeys/bad-too-many-fallbacks.yaml":
        "spec.fallbacks: Too many: 33: must have at most 32 items",
    "virtualkeys/bad-empty-allowed-providers.yaml":
        "spec.allowedProviders: Invalid value: 0: should have at least 1 items",
    "virtualkeys/bad-name-too-long.yaml":
        "metadata.name: Too long: may not be more than 63 characters",
    "virtualkeys/bad-expires-at.yaml":
        "spec.expiresAt: Invalid value: \"next year\": must be of type date-time",
    "virtualkeys/bad-provider-name-uppercase.yaml":
        "spec.allowedProviders[0]: Invalid value: \"OpenAI\": should match",
    "virtualkeys/bad-customer-too-long.yaml":
        "spec.customerId: Too long: may not be more than 253 characters",
    "virtualkeys/bad-missing-spec.yaml": "spec: Required value",
    "virtualkeys/bad-fallback-missing-model.yaml": "spec.fallbacks[0].model: Required value",
    "virtualkeys/bad-metadata-as-map.yaml":
        "spec.metadata: Invalid value: \"object\": must be of type array",
    "providercredentials/good-openai.yaml": None,
    "providercredentials/good-openai-compatible.yaml": None,
    "providercredentials/good-anthropic.yaml": None,
    "providercredentials/good-bedrock.yaml": None,
    "providercredentials/good-vertex.yaml": None,
    "providercredentials/good-azure.yaml": None,
    "providercredentials/bad-openai-no-secret.yaml":
        "spec.secretRef: Required value: `secretRef` must be set when `type` is 'OpenAI', "
        "'Anthropic' or 'AzureOpenAI'",
    "providercredentials/bad-compatible-no-baseurl.yaml":
        "spec.baseURL: Required value: `baseURL` must be set when `type` is 'OpenAICompatible' "
        "or 'AzureOpenAI'",
    "providercredentials/bad-baseurl-scheme.yaml":
        "spec.baseURL: Invalid value: \"string\": `baseURL` must be an http or https URL",
    "providercredentials/bad-bedrock-without-settings.yaml":
        "spec.awsBedrock: Invalid value: \"object\": `awsBedrock` must be set when `type` is "
        "'AWSBedrock', and only then",
    "providercredentials/bad-bedrock-settings-on-openai.yaml":
        "`awsBedrock` must be set when `type` is 'AWSBedrock', and only then",
    "providercredentials/bad-openai-settings-on-anthropic.yaml":
        "spec.openAI: Forbidden: `openAI` may only be set when `type` is 'OpenAI'",
    "providercredentials/bad-vertex-without-settings.yaml":
        "`gcpVertexAI` must be set when `type` is 'GCPVertexAI', and only then",
    "providercredentials/bad-azure-without-settings.yaml":
        "`azureOpenAI` must be set when `type` is 'AzureOpenAI', and only then",
    "providercredentials/bad-type-lowercase.yaml":
        "spec.type: Unsupported value: \"openai\": supported values: \"OpenAI\"",
    "providercredentials/bad-secret-key-invalid.yaml":
        "spec.secretRef.key: Invalid value: \"api key\": should match",
    "providercredentials/bad-azure-duplicate-deployment.yaml":
        "spec.azureOpenAI.deployments[1]: Duplicate value: {\"model\": \"gpt-4o\"}",
    "providercredentials/bad-bedrock-region.yaml":
        "spec.awsBedrock.region: Invalid value: \"US-EAST-1\": should match",
    "providercredentials/bad-timeouts-too-long.yaml":
        "spec.timeouts.totalSeconds: Invalid value: 86400: should be less than or equal to 7200",
    "providercredentials/bad-secretref-missing-key.yaml": "spec.secretRef.key: Required value",
    # Per-type settings: Anthropic's version header, Bedrock's Secret layout (or the default AWS
    # chain without secretRef), Vertex's publisher (or ADC without secretRef), Azure's kind of
    # credential.
    "providercredentials/good-anthropic-settings.yaml": None,
    "providercredentials/good-bedrock-static-keys.yaml": None,
    "providercredentials/good-vertex-claude-adc.yaml": None,
    "providercredentials/good-azure-entra.yaml": None,
    "providercredentials/bad-anthropic-settings-on-openai.yaml":
        "spec.anthropic: Forbidden: `anthropic` may only be set when `type` is 'Anthropic'",
    "providercredentials/bad-anthropic-version-format.yaml":
        "spec.anthropic.anthropicVersion: Invalid value: \"2023/06/01\": should match",
    "providercredentials/bad-bedrock-key-names-without-secret.yaml":
        "spec.awsBedrock: Forbidden: `awsBedrock.accessKeyIdKey` and `awsBedrock.sessionTokenKey` "
        "name entries of the `secretRef` Secret: they may only be set together with `secretRef`",
    "providercredentials/bad-bedrock-same-entry.yaml":
        "spec.awsBedrock: Invalid value: \"object\": `secretRef.key`, `awsBedrock.accessKeyIdKey` "
        "(default 'accessKeyId') and `awsBedrock.sessionTokenKey` must name different entries of "
        "the Secret",
    "providercredentials/bad-bedrock-session-token-entry.yaml":
        "`awsBedrock.sessionTokenKey` must name different entries of the Secret",
    "providercredentials/bad-vertex-publisher-lowercase.yaml":
        "spec.gcpVertexAI.publisher: Unsupported value: \"anthropic\": supported values: "
        "\"Google\", \"Anthropic\"",
    "providercredentials/bad-azure-authentication-unknown.yaml":
        "spec.azureOpenAI.authentication: Unsupported value: \"ManagedIdentity\": supported "
        "values: \"APIKey\", \"EntraIDToken\"",
}

FILES = sorted(str(p.relative_to(TESTDATA)) for p in TESTDATA.glob("*/*.yaml"))


def _load(case: str) -> dict[str, Any]:
    found = load_manifests(TESTDATA / case)
    assert not found.errors, found.errors
    [body] = found.virtual_keys + found.provider_credentials
    return body


def _check(errors: list[str], expected: str | None) -> None:
    if expected is None:
        assert errors == []
    else:
        assert errors, f"admitted, but expected: {expected}"
        assert any(expected in error for error in errors), errors


def test_every_testdata_file_has_an_expectation_and_vice_versa() -> None:
    assert sorted(CASES) == FILES


def test_good_and_bad_files_are_named_for_their_outcome() -> None:
    for case, expected in CASES.items():
        assert Path(case).name.startswith("good-" if expected is None else "bad-"), case


@pytest.mark.parametrize("case", FILES, ids=[f.removesuffix(".yaml") for f in FILES])
def test_the_crd_admits_or_rejects_the_manifest(case: str) -> None:
    plural = case.split("/")[0]
    _check([str(e) for e in validator_for(plural).validate(_load(case))], CASES[case])


@pytest.mark.parametrize("case", FILES, ids=[f.removesuffix(".yaml") for f in FILES])
def test_the_offline_validator_agrees_with_the_crd_word_for_word(case: str) -> None:
    """`tollgate validate` (models + Python rule twins) says exactly what admission says."""
    plural = case.split("/")[0]
    body = _load(case)
    offline = sorted(str(e) for e in check_object(body))
    _check(offline, CASES[case])
    assert offline == sorted(str(e) for e in validator_for(plural).validate(body))


@pytest.mark.parametrize("plural", ["virtualkeys", "providercredentials"])
def test_every_cel_rule_is_exercised_by_a_bad_case(plural: str) -> None:
    validator = validator_for(plural)
    seen = [str(error) for case, expected in CASES.items()
            if case.startswith(plural) and expected
            for error in validator.validate(_load(case))]
    for path, rule in validator.rules():
        assert any(rule["message"] in error for error in seen), (
            f"no bad case under testdata/{plural}/ trips the rule at {path}: {rule['message']}"
        )
