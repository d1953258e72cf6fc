"""Field errors in Kubernetes' wording, strict spec parsing and the reference helpers."""

from __future__ import annotations

import pytest

from tests.operator.objects import provider_credential, virtual_key
from tollgate.operator.models import ProviderCredentialSpec, SecretKeyRef, VirtualKeySpec
from tollgate.operator.validate import (
    CredentialIndex,
    CredentialInfo,
    FieldError,
    ObjectRef,
    Reason,
    SecretIndex,
    Severity,
    check_metadata,
    check_object,
    duplicate,
    forbidden,
    invalid,
    not_found,
    parse_spec,
    required,
    resolve_provider,
    secret_value,
    too_long,
    too_many,
    unsupported,
)


@pytest.mark.parametrize(("error", "text"), [
    (not_found("spec.fallbacks[1].provider", "anthropic"),
     'spec.fallbacks[1].provider: Not found: "anthropic"'),
    (required("spec.budget.maxUSD"), "spec.budget.maxUSD: Required value"),
    (required("spec.secretRef", "must be set"), "spec.secretRef: Required value: must be set"),
    (invalid("spec.rateLimit.requestsPerMinute", 0, "should be greater than or equal to 1"),
     "spec.rateLimit.requestsPerMinute: Invalid value: 0: should be greater than or equal to 1"),
    (unsupported("spec.type", "openai", ["OpenAI", "Anthropic"]),
     'spec.type: Unsupported value: "openai": supported values: "OpenAI", "Anthropic"'),
    (duplicate("spec.metadata[1]", {"name": "a"}),
     'spec.metadata[1]: Duplicate value: {"name": "a"}'),
    (forbidden("spec.openAI", "may only be set when"),
     "spec.openAI: Forbidden: may only be set when"),
    (too_long("metadata.name", 63), "metadata.name: Too long: may not be more than 63 characters"),
    (too_many("spec.fallbacks", 33, 32),
     "spec.fallbacks: Too many: 33: must have at most 32 items"),
    (invalid("spec.enabled", True, "x"), "spec.enabled: Invalid value: true: x"),
])
def test_field_errors_print_like_apimachinery(error: FieldError, text: str) -> None:
    assert str(error) == text


def test_specs_are_parsed_strictly_like_the_api_server() -> None:
    _, errors = parse_spec(VirtualKeySpec, {"rateLimit": {"requestsPerMinute": "600"}})
    assert [str(e) for e in errors] == [
        'spec.rateLimit.requestsPerMinute: Invalid value: "string": must be of type integer']
    _, errors = parse_spec(VirtualKeySpec, {"customer_id": "acme"})  # snake_case is not a field
    assert [str(e) for e in errors] == ["spec.customer_id: Forbidden: field not declared in schema"]


def test_every_failing_rule_is_reported_not_just_the_first() -> None:
    spec = {"type": "AWSBedrock", "openAI": {"organization": "x"}}
    parsed, errors = parse_spec(ProviderCredentialSpec, spec)
    assert parsed is None
    assert [str(e) for e in errors] == [
        "spec.openAI: Forbidden: `openAI` may only be set when `type` is 'OpenAI'",
        "spec.awsBedrock: Invalid value: \"object\": `awsBedrock` must be set when `type` is "
        "'AWSBedrock', and only then",
    ]


def test_a_valid_spec_parses_with_its_defaults() -> None:
    parsed, errors = parse_spec(VirtualKeySpec, {"budget": {"maxUSD": "10"}})
    assert errors == [] and parsed is not None and parsed.budget is not None
    assert (parsed.budget.period, parsed.budget.timezone, parsed.enabled) == ("Monthly", "UTC",
                                                                                True)


@pytest.mark.parametrize(("metadata", "expected"), [
    ({"name": "ok", "namespace": "tenants"}, []),
    ({"namespace": "tenants"}, ["metadata.name: Required value: name is required"]),
    ({"name": "Not_OK"}, ['metadata.name: Invalid value: "Not_OK": a lowercase RFC 1123 '
                          "subdomain must consist of lower case alphanumeric characters, '-' "
                          "or '.'"]),
    ({"name": "ok", "namespace": "a.b"}, ['metadata.namespace: Invalid value: "a.b": a lowercase '
                                          "RFC 1123 label must consist of lower case "
                                          "alphanumeric characters or '-'"]),
])
def test_names_are_checked_as_the_api_server_checks_them(metadata: dict[str, str],
                                                         expected: list[str]) -> None:
    assert [str(e) for e in check_metadata({"metadata": metadata})] == expected


def test_check_object_covers_metadata_and_spec() -> None:
    body = virtual_key("x" * 64, budget={"maxUSD": "-1"})
    assert [str(e) for e in check_object(body)] == [
        "metadata.name: Too long: may not be more than 63 characters",
        'spec.budget.maxUSD: Invalid value: "string": `maxUSD` must be a non-negative decimal '
        "string with at most 6 decimal places, such as '12000' or '12.50'",
    ]
    assert check_object(provider_credential("openai")) == []


def test_secret_values_come_from_data_or_string_data() -> None:
    index = SecretIndex([
        {"metadata": {"name": "s", "namespace": "n"}, "data": {"a": "c2stMQ=="},
         "stringData": {"b": "sk-2"}},
    ])
    obj = ObjectRef("ProviderCredential", "n", "p")
    assert secret_value(obj, "spec.secretRef", SecretKeyRef(name="s", key="a"), index) == (
        b"sk-1", None)
    assert secret_value(obj, "spec.secretRef", SecretKeyRef(name="s", key="b"), index) == (
        b"sk-2", None)
    value, problem = secret_value(obj, "spec.secretRef", SecretKeyRef(name="t", key="a"), index)
    assert value is None and problem is not None
    assert problem.reason is Reason.SECRET_NOT_FOUND and problem.severity is Severity.ERROR


def test_references_resolve_in_the_own_namespace_then_the_shared_ones() -> None:
    infos = [CredentialInfo(ObjectRef("ProviderCredential", ns, "openai"), None, f"{ns}.openai")
             for ns in ("shared", "team")]
    index = CredentialIndex(infos, ["shared"])
    key = ObjectRef("VirtualKey", "team", "k")
    info, _ = resolve_provider(key, "spec.allowedProviders[0]", "openai", index)
    assert info is not None and info.gateway_name == "team.openai"
    other = ObjectRef("VirtualKey", "elsewhere", "k")
    info, _ = resolve_provider(other, "f", "openai", index)
    assert info is not None and info.gateway_name == "shared.openai"
    info, problem = resolve_provider(other, "spec.fallbacks[0].provider", "gone", index)
    assert info is None and problem is not None
    assert str(problem) == ('spec.fallbacks[0].provider: Not found: "gone": no ProviderCredential '
                            "of that name in namespace 'elsewhere' or 'shared'")
