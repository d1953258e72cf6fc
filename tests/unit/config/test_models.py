"""The GatewayConfig contract: what it accepts, and how it explains what it refuses.

Each invalid case is one file under testdata/invalid/, paired below with a substring the error
must contain: the field path and the reason, so a platform engineer can fix the file from the
message alone.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tollgate.gateway.config.loader import ConfigError, parse_config
from tollgate.gateway.config.models import GatewayConfig, MockProvider, OpenAICompatibleProvider

TESTDATA = Path(__file__).parent / "testdata"
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tollgate.yaml"

INVALID: dict[str, str] = {
    "api-version-wrong.yaml": "apiVersion: Input should be 'tollgate.dev/v1alpha1'",
    "kind-wrong.yaml": "kind: Input should be 'GatewayConfig'",
    "top-level-field-typo.yaml": "virtualKey: Extra inputs are not permitted",
    "key-field-typo.yaml": "virtualKeys[0].allowedProvider: Extra inputs are not permitted",
    "provider-field-typo.yaml": "providers[0].latencyMS: Extra inputs are not permitted",
    "unknown-provider-type.yaml": "providers[0]: Input tag 'azure' found using 'type'",
    "provider-name-uppercase.yaml": "providers[0].name: must be 1-63 lowercase letters",
    "duplicate-provider-names.yaml": "providers: name 'mock' is declared more than once",
    "openai-compatible-without-base-url.yaml": "providers[0].baseURL: Field required",
    "credential-env-and-file.yaml":
        "providers[0].apiKey: exactly one of `env` or `file` must be set",
    "credential-empty.yaml": "providers[0].apiKey: exactly one of `env` or `file` must be set",
    "token-hash-not-hex.yaml":
        "virtualKeys[0]: `tokenSHA256` must be 64 lowercase hex characters",
    "token-hash-uppercase.yaml":
        "virtualKeys[0]: `tokenSHA256` must be 64 lowercase hex characters",
    "previous-token-hash-short.yaml":
        "virtualKeys[0]: `previousTokenSHA256` must be 64 lowercase hex characters",
    "duplicate-key-ids.yaml": "virtualKeys: name 'acme-prod' is declared more than once",
    "duplicate-token-hashes.yaml": "two keys share the same token hash",
    "previous-hash-is-another-keys-hash.yaml": "two keys share the same token hash",
    "fallback-provider-not-allowed.yaml":
        "virtualKeys[0].fallbacks[1].provider: 'backup' must be listed in `allowedProviders`",
    "fallback-unknown-provider.yaml":
        "virtualKeys[0].fallbacks[0].provider: unknown provider 'anthropic'",
    "allowed-providers-unknown.yaml":
        "virtualKeys[0].allowedProviders: unknown provider 'bedrock'",
    "alias-target-unknown-provider.yaml":
        "models[0].targets[0].provider: unknown provider 'ghost'",
    "alias-without-targets.yaml": "models[0].targets: Tuple should have at least 1 item",
    "duplicate-alias-names.yaml": "models: name 'default-chat' is declared more than once",
    "pricing-unknown-provider.yaml": "pricing[0].provider: unknown provider 'ghost'",
    "pricing-seven-decimals.yaml":
        "pricing[0].inputPerMillionUSD: price '1.0000001' has more than 6 decimal places",
    "budget-max-usd-seven-decimals.yaml":
        "virtualKeys[0].budget.maxUSD: amount in USD '10.1234567' has more than 6 decimal places",
    "budget-max-usd-negative.yaml": "virtualKeys[0].budget.maxUSD: amount in USD must not be "
                                    "negative",
    "budget-max-usd-float.yaml": "virtualKeys[0].budget.maxUSD: Input should be a valid string",
    "budget-max-usd-overflow.yaml": "virtualKeys[0].budget.maxUSD: ",
    "budget-period-unknown.yaml":
        "virtualKeys[0].budget.period: Input should be 'daily', 'weekly', 'monthly' or 'total'",
    "customer-budget-seven-decimals.yaml":
        "customers[0].budget.maxUSD: amount in USD '0.0000001' has more than 6 decimal places",
    "rate-limit-zero.yaml":
        "virtualKeys[0].rateLimit.requestsPerMinute: Input should be greater than or equal to 1",
    "expires-at-without-timezone.yaml": "virtualKeys[0]: `expiresAt` must carry a timezone",
    "metadata-value-not-string.yaml":
        "virtualKeys[0].metadata.costCenter: Input should be a valid string",
    "metadata-key-named-like-a-provider-type.yaml":
        "virtualKeys[0].metadata.mock: Input should be a valid string",
    "invalid-yaml.yaml": "the config is not valid YAML at line 4",
    "not-a-mapping.yaml": "the config must be a YAML mapping with `apiVersion` and `kind`",
    "empty.yaml": "the config must be a YAML mapping with `apiVersion` and `kind`",
}

VALID = sorted(path.name for path in (TESTDATA / "valid").iterdir())


def test_every_invalid_file_has_an_expected_message_and_every_entry_a_file():
    assert sorted(p.name for p in (TESTDATA / "invalid").iterdir()) == sorted(INVALID)


INVALID_CASES = [
    pytest.param(name, expected, id=name.removesuffix(".yaml"))
    for name, expected in sorted(INVALID.items())
]


@pytest.mark.parametrize(("name", "expected"), INVALID_CASES)
def test_an_invalid_document_is_refused_with_its_field_path_and_reason(name: str, expected: str):
    with pytest.raises(ConfigError) as refused:
        parse_config((TESTDATA / "invalid" / name).read_bytes())
    assert expected in str(refused.value)


@pytest.mark.parametrize("name", VALID, ids=VALID)
def test_a_valid_document_is_accepted(name: str):
    assert isinstance(parse_config((TESTDATA / "valid" / name).read_bytes()), GatewayConfig)


def test_the_example_config_shipped_for_make_run_is_valid():
    config = parse_config(EXAMPLE.read_bytes())
    assert [p.name for p in config.providers] == ["openai", "mock"]
    assert [k.id for k in config.virtual_keys] == ["demo"]


def test_every_problem_in_a_document_is_reported_at_once():
    document = """
apiVersion: tollgate.dev/v1alpha1
kind: GatewayConfig
providers: [{name: mock, type: mock}]
models:
- {name: chat, targets: [{provider: ghost, model: x}]}
pricing:
- {provider: phantom, model: x, inputPerMillionUSD: "1", outputPerMillionUSD: "1"}
"""
    with pytest.raises(ConfigError) as refused:
        parse_config(document)
    assert "models[0].targets[0].provider: unknown provider 'ghost'" in str(refused.value)
    assert "pricing[0].provider: unknown provider 'phantom'" in str(refused.value)


@pytest.mark.parametrize(("name", "path"), [
    ("duplicate-token-hashes.yaml", "virtualKeys[1].tokenSHA256"),
    ("previous-hash-is-another-keys-hash.yaml", "virtualKeys[1].previousTokenSHA256"),
], ids=["token-hash", "previous-token-hash"])
def test_a_shared_token_hash_names_the_field_and_both_keys(name: str, path: str):
    """With thousands of keys, "two keys share the same token hash" alone cannot be acted on."""
    with pytest.raises(ConfigError) as refused:
        parse_config((TESTDATA / "invalid" / name).read_bytes())
    assert path in str(refused.value)
    assert "acme-prod" in str(refused.value) and "globex" in str(refused.value)


def test_a_token_pasted_in_place_of_its_hash_is_not_echoed_in_the_error():
    """Error text names fields, not the values in them: this value is a live bearer token."""
    with pytest.raises(ConfigError) as refused:
        parse_config((TESTDATA / "invalid" / "token-hash-not-hex.yaml").read_bytes())
    assert "tg-acme-prod" not in str(refused.value)


def test_a_full_document_reads_into_typed_snake_case_fields():
    config = parse_config((TESTDATA / "valid" / "full.yaml").read_bytes())
    vllm = config.providers[1]
    assert isinstance(vllm, OpenAICompatibleProvider)
    assert vllm.base_url == "http://vllm.models.svc:8000/v1"
    assert vllm.api_key is not None and vllm.api_key.env == "VLLM_API_KEY"
    mock = config.providers[2]
    assert isinstance(mock, MockProvider)
    assert (mock.latency_ms, mock.failure_rate, mock.stream_chunk_words) == (20, 0.1, 3)
    key = config.virtual_keys[0]
    assert key.budget is not None and key.budget.max_usd == "12000.50"
    assert key.expires_at is not None and key.expires_at.utcoffset() == timedelta(0)
    assert [(t.provider, t.model) for t in key.fallbacks] == [
        ("openai", "gpt-4o"), ("vllm", "llama-3.1-70b"),
    ]
    assert key.metadata == {"billingCode": "ACME-LLM-01", "costCenter": "4711"}
    assert config.virtual_keys[1].enabled is False


def test_defaults_fill_what_a_minimal_document_leaves_out():
    config = parse_config((TESTDATA / "valid" / "minimal.yaml").read_bytes())
    assert config.revision is None
    assert config.server.max_body_bytes == 8 * 1024 * 1024
    assert (config.providers, config.models, config.virtual_keys) == ((), (), ())


def test_strings_are_stripped_of_surrounding_whitespace():
    config = parse_config((TESTDATA / "valid" / "comments-and-whitespace.yaml").read_bytes())
    assert config.providers[0].name == "mock"
    assert config.virtual_keys[0].token_sha256 == (
        "2122c0015efddfdc24fb03f03cbb23c9680df6c3b12f1d0de65270fd6015d56e"
    )


def test_a_loaded_config_cannot_be_changed_in_place():
    config = parse_config((TESTDATA / "valid" / "minimal.yaml").read_bytes())
    with pytest.raises(ValueError, match="frozen"):
        config.revision = "changed"  # type: ignore[misc]
