"""The committed CRDs are exactly what the models generate, and the API server would take them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.crdvalidate import structural_problems
from tollgate.operator import crdgen

ROOT = Path(__file__).resolve().parents[2]
GENERATED = crdgen.build_crds()
CRDS = {name: yaml.safe_load(text) for name, text in GENERATED.items()}


@pytest.mark.parametrize("folder", crdgen.OUTPUT_DIRS)
@pytest.mark.parametrize("name", sorted(GENERATED))
def test_the_committed_crd_matches_the_models(folder: str, name: str) -> None:
    path = ROOT / folder / name
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text("utf-8") == GENERATED[name], f"{path} drifted: run `make crds`"


def test_generation_is_deterministic() -> None:
    assert crdgen.build_crds() == GENERATED


def test_the_command_writes_both_folders_and_check_passes_afterwards(tmp_path: Path) -> None:
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 1
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    for folder in crdgen.OUTPUT_DIRS:
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == sorted(GENERATED)
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 0


@pytest.mark.parametrize("version", ["1.30", "1.33", "1.37"])
@pytest.mark.parametrize("name", sorted(CRDS))
def test_the_crd_is_a_valid_customresourcedefinition(name: str, version: str) -> None:
    assert kubernetes_validate.validate(CRDS[name], version, strict=True) == version


def test_kubernetes_validate_would_catch_a_misspelt_crd_field() -> None:
    """Negative control: the check above is not vacuous."""
    crd = copy.deepcopy(next(iter(CRDS.values())))
    crd["spec"]["versions"][0]["subresource"] = {"status": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, "1.37", strict=True)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_the_schema_is_structural_bounded_and_documented(name: str) -> None:
    assert structural_problems(CRDS[name]) == []


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    version: dict[str, Any]
    [version] = crd["spec"]["versions"]
    return version


@pytest.mark.parametrize(
    ("name", "short_name", "columns"),
    [
        ("tollgate.dev_virtualkeys.yaml", "vk",
         ["Customer", "Budget", "Spent", "Remaining", "Ready", "Age"]),
        ("tollgate.dev_providercredentials.yaml", "pc", ["Type", "Secret", "Ready", "Age"]),
    ],
)
def test_kubectl_get_shows_the_columns_and_names(name: str, short_name: str,
                                                  columns: list[str]) -> None:
    crd = CRDS[name]
    assert crd["spec"]["names"]["shortNames"] == [short_name]
    assert crd["spec"]["names"]["categories"] == ["tollgate"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = _version(crd)
    assert version["subresources"] == {"status": {}}
    default_columns = [c["name"] for c in version["additionalPrinterColumns"]
                       if not c.get("priority")]
    assert default_columns == columns
    ready = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


@pytest.mark.parametrize("name", sorted(CRDS))
def test_conditions_are_a_map_keyed_by_type(name: str) -> None:
    status = _version(CRDS[name])["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "observedGeneration" in status["properties"]


def test_enum_values_are_camelcase_and_defaults_are_declared() -> None:
    spec = _version(CRDS["tollgate.dev_virtualkeys.yaml"])["schema"]["openAPIV3Schema"][
        "properties"]["spec"]["properties"]
    assert spec["budget"]["properties"]["period"]["enum"] == ["Daily", "Weekly", "Monthly",
                                                              "Total"]
    assert spec["budget"]["properties"]["period"]["default"] == "Monthly"
    assert spec["onStoreUnavailable"]["enum"] == ["Allow", "Deny"]
    assert spec["enabled"]["default"] is True
    pc = _version(CRDS["tollgate.dev_providercredentials.yaml"])["schema"]["openAPIV3Schema"][
        "properties"]["spec"]["properties"]
    assert pc["type"]["enum"] == ["OpenAI", "Anthropic", "AWSBedrock", "GCPVertexAI",
                                  "AzureOpenAI", "OpenAICompatible"]
