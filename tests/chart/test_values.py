"""values.yaml, values.schema.json, the templates and the generated reference agree: every key
documented, typed and used; the reference in docs/install.md is current."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import yaml

from tests.chart.tools import CHART, ROOT, VALUES

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
TEMPLATES = "\n".join(p.read_text() for p in (CHART / "templates").iterdir())


def values_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("values_doc", ROOT / "scripts" / "values-doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["values_doc"] = module
    spec.loader.exec_module(module)
    return module


def keys(doc: ModuleType, values: dict[str, Any], path: list[str] | None = None) -> list[str]:
    """Every key the chart defines one by one (not inside passed-through Kubernetes objects)."""
    path = path or []
    if path and not doc.is_structured(SCHEMA, path):
        return []
    out = []
    for key, child in values.items():
        out.append(".".join([*path, key]))
        if isinstance(child, dict):
            out += keys(doc, child, [*path, key])
    return out


def schema_keys(doc: ModuleType, node: dict[str, Any], path: list[str] | None = None) -> list[str]:
    path = path or []
    out = []
    for key in node.get("properties", {}):
        out.append(".".join([*path, key]))
        if doc.is_structured(SCHEMA, [*path, key]):
            out += schema_keys(doc, doc.schema_at(SCHEMA, [*path, key]), [*path, key])
    return out


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over the defaults (maps merge, the rest replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def test_the_defaults_and_test_values_satisfy_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(DEFAULTS, SCHEMA)
    for path in VALUES.glob("*.yaml"):
        jsonschema.validate(merged(DEFAULTS, yaml.safe_load(path.read_text())), SCHEMA)


def test_every_object_in_the_schema_rejects_unknown_keys() -> None:
    def walk(node: dict[str, Any], where: str) -> None:
        if node.get("properties"):
            assert node.get("additionalProperties") is False, where
        for key, child in node.get("properties", {}).items():
            walk(child, f"{where}.{key}")
    walk(SCHEMA, "(root)")
    for name, definition in SCHEMA["definitions"].items():
        walk(definition, name)


def test_every_key_is_documented_right_above_it() -> None:
    doc = values_doc()
    documented = {entry.path for entry in doc.entries()}
    missing = [key for key in keys(doc, DEFAULTS) if key not in documented]
    assert missing == []


def test_every_schema_key_is_in_values_yaml_and_the_other_way_round() -> None:
    doc = values_doc()
    documented = {entry.path for entry in doc.entries()}  # includes +docs:property keys
    assert sorted(set(schema_keys(doc, SCHEMA)) - documented) == []
    assert sorted(set(keys(doc, DEFAULTS)) - set(schema_keys(doc, SCHEMA))) == []


def test_every_value_is_used_by_a_template() -> None:
    doc = values_doc()
    unused = []
    for entry in doc.entries():
        if entry.structured:
            continue  # its keys are checked one by one
        parts = entry.path.split(".")
        # The key itself, or an enclosing object passed on whole (`toYaml .Values.a.b`); never
        # a top-level section through an alias, which would hide unused keys.
        used = any(re.search(r"\.Values\." + re.escape(".".join(parts[:n]))
                             + (r"(?!\w)" if n == len(parts) else r"(?![\w.])"), TEMPLATES)
                   for n in range(len(parts), 1 if len(parts) > 1 else 0, -1))
        if not used:
            unused.append(entry.path)
    assert not re.search(r":= \.Values", TEMPLATES), "use full `.Values.` paths, no aliases"
    assert unused == []


def test_the_values_reference_in_the_docs_is_current() -> None:
    doc = values_doc()
    text = (ROOT / "docs" / "install.md").read_text()
    assert doc.embedded(text, doc.markdown()) == text, "run `python scripts/values-doc.py --write`"


def test_the_reference_lists_sections_types_and_defaults() -> None:
    table = values_doc().markdown()
    assert "### Shared state" in table
    modes = '`"external"` \\| `"evaluation"` \\| `"embedded"`'
    assert f'| `store.mode` | {modes} | `"evaluation"` |' in table
    assert "| `gateway.podDisruptionBudget.minAvailable` | integer/string | *unset* |" in table


def test_the_chart_version_and_image_agree_with_the_project() -> None:
    import tomllib

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert DEFAULTS["image"]["repository"] == "ghcr.io/tollgate-dev/tollgate"
    assert Path(CHART / "files" / "crds").is_symlink()
