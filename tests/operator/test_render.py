"""render(): custom resources + Secrets → GatewayConfig, credentials Secret data and reports."""

from __future__ import annotations

import base64
import random
from typing import Any

import kubernetes_validate
import pytest

from tests.operator.objects import provider_credential, secret, sha, virtual_key
from tollgate.gateway.config.loader import parse_config
from tollgate.operator import render as render_module
from tollgate.operator.keys import generated_secret_name
from tollgate.operator.models import ProviderType
from tollgate.operator.render import (
    CREDENTIALS_MOUNT_PATH,
    RenderError,
    RenderOptions,
    canonical_json,
    credentials_secret,
    dump_yaml,
    gateway_name,
    lease_seconds,
    render,
    render_credentials,
)
from tollgate.operator.validate import ObjectRef, Reason, Severity

SHARED = RenderOptions(shared_namespaces=("tollgate-system",))
OPENAI_KEY = "sk-live-0123456789abcdef"


def _platform() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The DESIGN.md layout: credentials in tollgate-system, keys in tenant namespaces."""
    credentials = [
        provider_credential("openai", "tollgate-system"),
        provider_credential("anthropic", "tollgate-system", "Anthropic"),
        provider_credential("vllm", "tollgate-system", "OpenAICompatible",
                            models=["llama-3.3-70b"]),
    ]
    secrets = [secret("openai-api-key", "tollgate-system", apiKey=OPENAI_KEY + "\n"),
               secret("anthropic-api-key", "tollgate-system", apiKey="sk-ant-secret")]
    return credentials, secrets


def _key(config: dict[str, Any], key_id: str) -> dict[str, Any]:
    return next(k for k in config["virtualKeys"] if k["id"] == key_id)


def _problems(rendered: Any, kind: str, namespace: str, name: str) -> list[str]:
    return [str(p) for p in rendered.reports[ObjectRef(kind, namespace, name)].problems]


def test_the_design_sample_renders_to_a_config_the_gateway_loads() -> None:
    credentials, secrets = _platform()
    acme = virtual_key(
        "acme-prod",
        customerId="acme_corp",
        budget={"maxUSD": "12000", "period": "Monthly"},
        rateLimit={"requestsPerMinute": 600, "tokensPerMinute": 400000},
        allowedProviders=["openai", "vllm"],
        fallbacks=[{"provider": "openai", "model": "gpt-4o"},
                   {"provider": "vllm", "model": "llama-3.3-70b"}],
        metadata=[{"name": "costCenter", "value": "4711"},
                  {"name": "billingCode", "value": "ACME-LLM-01"}],
        expiresAt="2027-01-01T01:00:00+01:00",
    )
    rendered = render([acme], credentials, secrets, SHARED)
    config = parse_config(dump_yaml(rendered.config))  # the gateway's own loader
    assert [p.name for p in config.providers] == ["tollgate-system.anthropic",
                                                  "tollgate-system.openai",
                                                  "tollgate-system.vllm"]
    assert _key(rendered.config, "tenants.acme-prod") == {
        "id": "tenants.acme-prod",
        "customerId": "acme_corp",
        "tokenSHA256": sha("tg-tenants-acme-prod"),
        "enabled": True,
        "expiresAt": "2027-01-01T00:00:00Z",
        "allowedProviders": ["tollgate-system.openai", "tollgate-system.vllm"],
        "fallbacks": [{"provider": "tollgate-system.openai", "model": "gpt-4o"},
                      {"provider": "tollgate-system.vllm", "model": "llama-3.3-70b"}],
        "metadata": {"billingCode": "ACME-LLM-01", "costCenter": "4711"},
        "budget": {"maxUSD": "12000", "period": "monthly", "timezone": "UTC",
                   "onExceededInStream": "finish"},
        "rateLimit": {"requestsPerMinute": 600, "tokensPerMinute": 400000},
        "onStoreUnavailable": "allow",
    }
    assert rendered.reports[ObjectRef("VirtualKey", "tenants", "acme-prod")].ready


def test_no_secret_material_reaches_the_config_or_the_reports() -> None:
    credentials, secrets = _platform()
    secrets.append(secret("acme-token", "tenants", token="tg-very-secret-token"))
    keys = [virtual_key("acme", tokenSecretRef={"name": "acme-token", "key": "token"}),
            virtual_key("broken", tokenSecretRef={"name": "acme-token", "key": "nope"})]
    rendered = render(keys, credentials, secrets, SHARED)
    visible = dump_yaml(rendered.config) + "".join(str(p) for p in rendered.problems)
    for value in (OPENAI_KEY, "sk-ant-secret", "tg-very-secret-token"):
        assert value not in visible
    assert _key(rendered.config, "tenants.acme")["tokenSHA256"] == sha("tg-very-secret-token")


def test_provider_keys_become_file_references_into_the_credentials_secret() -> None:
    credentials, secrets = _platform()
    rendered = render([], credentials, secrets, SHARED)
    [openai] = [p for p in rendered.config["providers"] if p["type"] == "openai"]
    assert openai["apiKey"] == {
        "file": f"{CREDENTIALS_MOUNT_PATH}/tollgate-system.openai.apiKey"}
    assert rendered.credentials == {
        "tollgate-system.anthropic.apiKey": base64.b64encode(b"sk-ant-secret").decode(),
        "tollgate-system.openai.apiKey": base64.b64encode((OPENAI_KEY + "\n").encode()).decode()}
    assert render_credentials(credentials, secrets, SHARED) == rendered.credentials
    body = credentials_secret(rendered, "tollgate-credentials", "tollgate-system")
    assert body["kind"] == "Secret" and body["data"] == rendered.credentials
    assert kubernetes_validate.validate(body, "1.37", strict=True) == "1.37"
    [vllm] = [p for p in rendered.config["providers"] if p["type"] == "openai-compatible"]
    assert "apiKey" not in vllm  # a keyless server needs no file


def test_a_fallback_on_a_missing_credential_is_reported_in_kubernetes_wording() -> None:
    credentials, secrets = _platform()
    key = virtual_key("acme", fallbacks=[{"provider": "openai", "model": "gpt-4o"},
                                         {"provider": "bedrock", "model": "claude"}])
    rendered = render([key], credentials, secrets, SHARED)
    problems = rendered.reports[ObjectRef("VirtualKey", "tenants", "acme")].problems
    assert str(problems[0]).startswith('spec.fallbacks[1].provider: Not found: "bedrock"')
    assert problems[0].reason is Reason.PROVIDER_CREDENTIAL_NOT_FOUND
    assert problems[0].retryable
    # Served narrower (without the broken step), never wider.
    assert _key(rendered.config, "tenants.acme")["fallbacks"] == [
        {"provider": "tollgate-system.openai", "model": "gpt-4o"}]
    assert not rendered.reports[ObjectRef("VirtualKey", "tenants", "acme")].ready


def test_every_provider_type_has_a_renderer() -> None:
    assert set(render_module.PROVIDERS) == set(ProviderType)


def test_a_key_is_never_widened_when_all_its_providers_are_unavailable() -> None:
    credentials, secrets = _platform()
    credentials.append(provider_credential("claude", "tollgate-system", "Anthropic",
                                           openAI={"organization": "org-x"}))  # invalid spec
    key = virtual_key("claude-only", allowedProviders=["claude"])
    rendered = render([key], credentials, secrets, SHARED)
    assert rendered.config["virtualKeys"] == []  # an empty allow-list would mean "everything"
    report = rendered.reports[ObjectRef("VirtualKey", "tenants", "claude-only")]
    assert not report.rendered
    assert report.problems[-1].reason is Reason.NO_PROVIDERS


def test_keys_get_an_explicit_allow_list_of_the_providers_they_can_see() -> None:
    """Left empty, the gateway would let a key use another namespace's credentials."""
    keys = [virtual_key("a", namespace="team-a"), virtual_key("b", namespace="team-b")]
    credentials = [provider_credential("openai", "team-a"), provider_credential("openai", "team-b"),
                   provider_credential("vllm", "tollgate-system", "OpenAICompatible")]
    secrets = [secret("openai-api-key", "team-a", apiKey="sk-a"),
               secret("openai-api-key", "team-b", apiKey="sk-b")]
    rendered = render(keys, credentials, secrets, SHARED)
    assert _key(rendered.config, "team-a.a")["allowedProviders"] == [
        "team-a.openai", "tollgate-system.vllm"]
    assert _key(rendered.config, "team-b.b")["allowedProviders"] == [
        "team-b.openai", "tollgate-system.vllm"]


def test_without_shared_namespaces_credentials_stay_in_their_namespace() -> None:
    credentials, secrets = _platform()
    rendered = render([virtual_key("acme")], credentials, secrets)
    assert rendered.config["virtualKeys"] == []
    [problem] = rendered.reports[ObjectRef("VirtualKey", "tenants", "acme")].problems
    assert problem.reason is Reason.NO_PROVIDERS


def test_a_credential_in_the_keys_own_namespace_shadows_the_shared_one() -> None:
    credentials, secrets = _platform()
    credentials.append(provider_credential("openai", "tenants"))
    secrets.append(secret("openai-api-key", "tenants", apiKey="sk-tenant"))
    key = virtual_key("acme", fallbacks=[{"provider": "openai", "model": "gpt-4o"}])
    rendered = render([key], credentials, secrets, SHARED)
    assert _key(rendered.config, "tenants.acme")["fallbacks"] == [
        {"provider": "tenants.openai", "model": "gpt-4o"}]


def test_the_same_names_in_two_namespaces_do_not_collide() -> None:
    credentials = [provider_credential("openai", ns) for ns in ("a", "b")]
    secrets = [secret("openai-api-key", ns, apiKey=f"sk-{ns}") for ns in ("a", "b")]
    keys = [virtual_key("prod", namespace=ns) for ns in ("a", "b")]
    rendered = render(keys, credentials, secrets)
    assert [k["id"] for k in rendered.config["virtualKeys"]] == ["a.prod", "b.prod"]
    assert [p["name"] for p in rendered.config["providers"]] == ["a.openai", "b.openai"]
    assert set(rendered.credentials) == {"a.openai.apiKey", "b.openai.apiKey"}


@pytest.mark.parametrize(("namespace", "name"), [
    ("n" * 63, "k" * 63),
    ("tenants", "a.b.c"),
    ("x", "UPPER_case"),
])
def test_gateway_names_are_valid_and_distinct(namespace: str, name: str) -> None:
    result = gateway_name(namespace, name)
    assert len(result) <= 63
    assert result == gateway_name(namespace, name)
    assert result != gateway_name(namespace, name + "x")
    parse_config(dump_yaml({"apiVersion": "tollgate.dev/v1alpha1", "kind": "GatewayConfig",
                            "virtualKeys": [{"id": result, "tokenSHA256": "a" * 64}]}))


def test_long_names_are_shortened_with_a_hash() -> None:
    name = gateway_name("n" * 63, "k" * 63)
    assert name.startswith("n" * 52) and len(name) == 63


def test_tokens_come_from_a_secret_stripped_of_surrounding_whitespace() -> None:
    credentials, secrets = _platform()
    secrets.append(secret("acme-token", "tenants", token="tg-abc\n"))
    key = virtual_key("acme", tokenSecretRef={"name": "acme-token", "key": "token"})
    rendered = render([key], credentials, secrets, SHARED)
    assert _key(rendered.config, "tenants.acme")["tokenSHA256"] == sha("tg-abc")


def test_a_generated_token_and_its_predecessor_are_both_accepted_during_rotation() -> None:
    credentials, secrets = _platform()
    secrets.append(secret(generated_secret_name("acme"), "tenants",
                          token="tg-new", previousToken="tg-old"))
    rendered = render([virtual_key("acme", generated=True)], credentials, secrets, SHARED)
    entry = _key(rendered.config, "tenants.acme")
    assert (entry["tokenSHA256"], entry["previousTokenSHA256"]) == (sha("tg-new"), sha("tg-old"))


def test_a_key_waits_for_its_generated_token() -> None:
    credentials, secrets = _platform()
    rendered = render([virtual_key("acme", generated=True)], credentials, secrets, SHARED)
    report = rendered.reports[ObjectRef("VirtualKey", "tenants", "acme")]
    assert not report.rendered and not report.ready
    [problem] = report.problems
    assert problem.reason is Reason.TOKEN_PENDING and problem.retryable
    assert "tollgate-vk-acme" in str(problem)


@pytest.mark.parametrize(("token_ref", "secrets", "expected", "reason"), [
    ({"name": "missing", "key": "token"}, [],
     'spec.tokenSecretRef.name: Not found: "missing"', Reason.SECRET_NOT_FOUND),
    ({"name": "tok", "key": "token"}, [secret("tok", other="x")],
     "spec.tokenSecretRef.key: Not found: \"token\": Secret 'tok' has no such key",
     Reason.SECRET_KEY_NOT_FOUND),
    ({"name": "tok", "key": "token"}, [secret("tok", token="  \n")],
     "spec.tokenSecretRef.key: Not found: \"token\": Secret 'tok' holds an empty value under it",
     Reason.SECRET_KEY_NOT_FOUND),
])
def test_a_token_secret_that_cannot_be_read_keeps_the_key_out(
    token_ref: dict[str, str], secrets: list[dict[str, Any]], expected: str, reason: Reason
) -> None:
    credentials, platform_secrets = _platform()
    key = virtual_key("acme", tokenSecretRef=token_ref)
    rendered = render([key], credentials, platform_secrets + secrets, SHARED)
    [problem] = rendered.reports[ObjectRef("VirtualKey", "tenants", "acme")].problems
    assert str(problem) == expected and problem.reason is reason
    assert rendered.config["virtualKeys"] == []


def test_a_missing_provider_secret_is_an_error_but_the_provider_stays_for_failover() -> None:
    credentials, secrets = _platform()
    rendered = render([], credentials, [s for s in secrets if "openai" not in str(s)], SHARED)
    report = rendered.reports[ObjectRef("ProviderCredential", "tollgate-system", "openai")]
    assert report.rendered and not report.ready
    assert report.problems[0].reason is Reason.SECRET_NOT_FOUND
    assert report.problems[0].severity is Severity.ERROR
    assert "tollgate-system.openai.apiKey" not in rendered.credentials
    offline = render([], credentials, [], RenderOptions(secrets_complete=False))
    [problem] = offline.reports[ObjectRef("ProviderCredential", "tollgate-system",
                                          "openai")].problems
    assert problem.severity is Severity.WARNING
    assert "must exist in the cluster" in str(problem)


def test_two_keys_with_one_token_keep_only_the_first() -> None:
    credentials, secrets = _platform()
    keys = [virtual_key(n, tokenSHA256=sha("tg-shared")) for n in ("b-second", "a-first")]
    rendered = render(keys, credentials, secrets, SHARED)
    assert [k["id"] for k in rendered.config["virtualKeys"]] == ["tenants.a-first"]
    [problem] = rendered.reports[ObjectRef("VirtualKey", "tenants", "b-second")].problems
    assert problem.reason is Reason.DUPLICATE_TOKEN
    assert str(problem) == ('spec.tokenSHA256: Duplicate value: "<token>": another VirtualKey '
                            "already uses this token")


def test_an_invalid_spec_keeps_only_that_key_out() -> None:
    credentials, secrets = _platform()
    keys = [virtual_key("ok"),
            virtual_key("bad", budget={"maxUSD": "1.1234567"}),
            virtual_key("bad-zone", budget={"maxUSD": "1", "timezone": "Mars/Olympus"})]
    rendered = render(keys, credentials, secrets, SHARED)
    assert [k["id"] for k in rendered.config["virtualKeys"]] == ["tenants.ok"]
    assert _problems(rendered, "VirtualKey", "tenants", "bad") == [
        'spec.budget.maxUSD: Invalid value: "string": `maxUSD` must be a non-negative decimal '
        "string with at most 6 decimal places, such as '12000' or '12.50'"]
    assert _problems(rendered, "VirtualKey", "tenants", "bad-zone") == [
        'spec.budget.timezone: Invalid value: "Mars/Olympus": must be an IANA time zone name '
        "such as 'UTC' or 'Europe/Berlin'"]


def test_a_fallback_model_outside_the_credentials_model_list_is_reported() -> None:
    credentials, secrets = _platform()
    key = virtual_key("acme", fallbacks=[{"provider": "vllm", "model": "llama-2"}])
    rendered = render([key], credentials, secrets, SHARED)
    assert _problems(rendered, "VirtualKey", "tenants", "acme") == [
        'spec.fallbacks[0].model: Not found: "llama-2": not in the `models` of '
        "ProviderCredential tollgate-system/vllm"]


def test_rendering_is_deterministic_whatever_the_input_order() -> None:
    credentials, secrets = _platform()
    keys = [virtual_key(f"key-{i}", customerId=f"c{i % 3}") for i in range(50)]
    first = render(keys, credentials, secrets, SHARED)
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    second = render(shuffled, list(reversed(credentials)), list(reversed(secrets)), SHARED)
    assert canonical_json(first.config) == canonical_json(second.config)
    assert dump_yaml(first.config) == dump_yaml(second.config)
    assert first.revision == second.revision
    assert first.credentials == second.credentials


def test_the_revision_follows_the_config_not_the_secrets() -> None:
    credentials, secrets = _platform()
    keys = [virtual_key("acme")]
    base = render(keys, credentials, secrets, SHARED)
    rotated = render(keys, credentials,
                     [secret("openai-api-key", "tollgate-system", apiKey="sk-rotated")], SHARED)
    assert rotated.revision == base.revision and rotated.credentials != base.credentials
    changed = render([virtual_key("acme", customerId="acme")], credentials, secrets, SHARED)
    assert changed.revision != base.revision


def test_deployment_sections_are_copied_from_the_base() -> None:
    credentials, secrets = _platform()
    options = RenderOptions(shared_namespaces=("tollgate-system",),
                            base={"store": {"url": "redis://redis:6379/0"}})
    rendered = render([], credentials, secrets, options)
    assert rendered.config["store"] == {"url": "redis://redis:6379/0"}
    assert list(rendered.config)[:4] == ["apiVersion", "kind", "revision", "store"]
    with pytest.raises(ValueError, match="`base` may only hold"):
        render([], [], [], RenderOptions(base={"virtualKeys": []}))


needs_lease = pytest.mark.skipif(lease_seconds(RenderOptions()) is None,
                                 reason="this gateway has no store.leaseSeconds")


@needs_lease
def test_a_timeout_longer_than_the_budget_hold_keeps_only_that_credential_out() -> None:
    credentials, secrets = _platform()
    credentials.append(provider_credential("slow", "tollgate-system", "OpenAICompatible",
                                           timeouts={"totalSeconds": 7200}))
    rendered = render([virtual_key("acme")], credentials, secrets, SHARED)
    report = rendered.reports[ObjectRef("ProviderCredential", "tollgate-system", "slow")]
    assert not report.rendered
    assert str(report.problems[0]).startswith(
        "spec.timeouts.totalSeconds: Invalid value: 7200: must not exceed the gateway's "
        "`store.leaseSeconds` (3600)")
    assert "tollgate-system.slow" not in _key(rendered.config, "tenants.acme")["allowedProviders"]


def test_a_bad_base_section_is_a_render_error() -> None:
    base = {"models": [{"name": "chat", "targets": [{"provider": "nowhere", "model": "m"}]}]}
    with pytest.raises(RenderError, match="unknown provider 'nowhere'"):
        render([], [], [], RenderOptions(base=base))
