"""The import rules between the gateway and the operator (README, "Layout"), checked on the
source: the operator takes from the gateway only the config contract and the shared leader
election; the gateway never imports the operator (the `tollgate` command line, front door to
both, aside); the shared module needs nothing beyond the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPERATOR_MAY_USE = {"tollgate.gateway.config.models", "tollgate.gateway.kube",
                    "tollgate.gateway.kube.lease"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if node.module == "tollgate.gateway.kube")
    return found


@pytest.mark.parametrize("path", sorted((REPO / "operator").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_operator_imports_only_the_contract_and_the_lease_from_the_gateway(
        path: Path) -> None:
    used = {m for m in _imports(path) if m.startswith("tollgate.gateway")}
    assert used <= OPERATOR_MAY_USE, used - OPERATOR_MAY_USE


def test_the_gateway_never_imports_the_operator() -> None:
    offenders = {str(path.relative_to(REPO)): sorted(m for m in _imports(path)
                                                     if m.startswith("tollgate.operator"))
                 for path in (REPO / "gateway").rglob("*.py") if path.name != "cli.py"}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("name", ["lease.py", "options.py", "__init__.py"])
def test_the_shared_and_cheap_modules_need_only_the_standard_library(name: str) -> None:
    used = {m.split(".")[0] for m in _imports(REPO / "gateway" / "kube" / name)}
    assert used - {"tollgate", "__future__"} <= set(sys.stdlib_module_names)
    tollgate = {m for m in _imports(REPO / "gateway" / "kube" / name) if m.startswith("tollgate")}
    assert tollgate <= {"tollgate.gateway.kube.lease"}
