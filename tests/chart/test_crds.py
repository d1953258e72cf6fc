"""The chart installs the generated CRDs as templates, once, byte for byte what
`python -m tollgate.operator.crdgen` writes; Helm's own crds/ mechanism never sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chart.tools import CHART, HELM, HELM3, helm, render, set_json
from tollgate.operator import crdgen

GENERATED = {name: yaml.safe_load(text) for name, text in crdgen.build_crds().items()}


def rendered_crds(*sets: str) -> dict[str, dict]:
    return {crd["metadata"]["name"]: crd
            for crd in render(sets=sets).of("CustomResourceDefinition")}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_every_generated_crd_has_its_template(name: str) -> None:
    template = CHART / "templates" / f"crd-{name}"
    assert template.is_file(), f"add {template.relative_to(CHART)} (copy a sibling crd-*.yaml)"
    assert f'"{name}"' in template.read_text()


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_the_rendered_crd_is_the_generated_one(name: str) -> None:
    generated = GENERATED[name]
    crd = rendered_crds()[generated["metadata"]["name"]]
    assert crd["spec"] == generated["spec"]
    assert crd["apiVersion"] == generated["apiVersion"] and crd["kind"] == generated["kind"]
    assert generated["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_the_templates_read_the_crds_folder_through_one_symlink() -> None:
    link = CHART / "files" / "crds"
    assert link.is_symlink() and link.resolve() == (CHART / "crds").resolve()


@pytest.mark.parametrize("binary", [HELM, HELM3], ids=["helm4", "helm3"])
def test_helm_does_not_install_the_crds_folder_a_second_time(binary: Path) -> None:
    """.helmignore hides crds/, so `helm install` applies the CRDs only as templates."""
    shown = helm("show", "crds", str(CHART), binary=binary)
    assert shown.returncode == 0
    assert "CustomResourceDefinition" not in shown.stdout


def test_crds_are_kept_on_uninstall_unless_told_otherwise() -> None:
    for crd in rendered_crds().values():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    for crd in rendered_crds(set_json("crds.keep", False)).values():
        assert "helm.sh/resource-policy" not in crd["metadata"]["annotations"]


def test_crds_can_be_managed_elsewhere() -> None:
    assert rendered_crds(set_json("crds.enabled", False)) == {}
    assert set(rendered_crds()) == {crd["metadata"]["name"] for crd in GENERATED.values()}
