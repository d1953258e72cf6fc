"""Validate a custom resource against its CRD the way the API server does, without a cluster.

No package does this (see TESTING.md, "Validating manifests"), so this adapter does it in four
steps, like apiextensions-apiserver: apply schema defaults; validate with `jsonschema` after
translating the OpenAPI extensions it does not know (`nullable`, `x-kubernetes-int-or-string`,
unknown fields rejected as `kubectl apply`'s strict field validation does); check list-type
uniqueness (`x-kubernetes-list-type: set|map`); evaluate every `x-kubernetes-validations` rule
with `cel-python`. Errors are worded as `field.Error` prints them, with the operator's own
formatter, so they compare equal to what `tollgate validate` says.

Limits: no CEL cost estimation, no transition rules (`oldSelf`; creation only), and none of
Kubernetes' CEL extension libraries (lowerAscii, url, quantity ...), which our rules avoid.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from tollgate.operator.validate import (
    ErrorType,
    FieldError,
    duplicate,
    forbidden,
    invalid,
    required,
    too_long,
    too_many,
    unsupported,
)

__all__ = [
    "CRDS_DIR",
    "CRDValidator",
    "load_crd",
    "structural_problems",
    "validator_for",
]

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_FORMATS = jsonschema.FormatChecker(formats=())
_BLOCKING = {ErrorType.REQUIRED, ErrorType.NOT_SUPPORTED, ErrorType.TOO_LONG, ErrorType.TOO_MANY}


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


_FORMATS.checks("date-time")(_date_time)


def load_crd(kind_plural: str) -> dict[str, Any]:
    """The committed CRD, e.g. load_crd("virtualkeys")."""
    crd: dict[str, Any] = yaml.safe_load(
        (CRDS_DIR / f"tollgate.dev_{kind_plural}.yaml").read_text("utf-8"))
    return crd


@cache
def validator_for(kind_plural: str) -> CRDValidator:
    return CRDValidator(load_crd(kind_plural))


def _path(parts: Iterator[Any] | list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


def _translate(node: Mapping[str, Any], at_root: bool = False) -> dict[str, Any]:
    """OpenAPI-with-Kubernetes-extensions → JSON Schema that jsonschema understands."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in node:
        out["properties"] = {
            name: (_translate(child) if not (at_root and name == "metadata")
                   else {"type": "object", "properties": child.get("properties", {})})
            for name, child in node["properties"].items()
        }
        if "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), Mapping):
        out["additionalProperties"] = _translate(node["additionalProperties"])
    if "items" in node:
        out["items"] = _translate(node["items"])
    return out


def _apply_defaults(schema: Mapping[str, Any], value: Any) -> None:
    """Structural defaulting: fill absent properties that have a `default`, recursively."""
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _apply_defaults(child, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _apply_defaults(schema["items"], item)


def _schema_error(error: jsonschema.ValidationError) -> list[FieldError]:
    path = _path(list(error.absolute_path))
    instance, expected, kind = error.instance, error.validator_value, error.validator

    def child(name: str) -> str:
        return f"{path}.{name}" if path else name

    if kind == "required":
        return [required(child(name)) for name in expected if name not in instance]
    if kind == "additionalProperties":
        declared = error.schema.get("properties", {})
        return [forbidden(child(name), "field not declared in schema")
                for name in instance if name not in declared]
    if kind == "type":
        shown = expected if isinstance(expected, str) else expected[0]
        return [invalid(path, _json_type(instance), f"must be of type {shown}")]
    if kind == "enum":
        if not isinstance(instance, str):
            return [invalid(path, _json_type(instance), "must be of type string")]
        return [unsupported(path, instance, expected)]
    if kind == "maxLength":
        return [too_long(path, expected)]
    if kind == "minLength":
        return [invalid(path, instance, f"should be at least {expected} chars long")]
    if kind == "maxItems":
        return [too_many(path, len(instance), expected)]
    if kind == "minItems":
        return [invalid(path, len(instance), f"should have at least {expected} items")]
    if kind == "pattern":
        return [invalid(path, instance, f"should match '{expected}'")]
    if kind == "minimum":
        return [invalid(path, instance, f"should be greater than or equal to {expected}")]
    if kind == "maximum":
        return [invalid(path, instance, f"should be less than or equal to {expected}")]
    if kind == "format":
        return [invalid(path, instance, f"must be of type {expected}")]
    return [invalid(path, instance, error.message)]


def _list_duplicates(schema: Mapping[str, Any], value: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name in value:
                errors += _list_duplicates(child, value[name], f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        seen: list[Any] = []
        for i, item in enumerate(value):
            if list_type == "set":
                key = item
            elif list_type == "map":
                key = {k: item.get(k) for k in schema.get("x-kubernetes-list-map-keys", [])}
            else:
                key = None
            if key is not None:
                if key in seen:
                    errors.append(duplicate(f"{path}[{i}]", key))
                seen.append(key)
            errors += _list_duplicates(schema.get("items", {}), item, f"{path}[{i}]")
    return errors


class CRDValidator:
    """Admission of one kind: `validate(obj)` returns every error, [] when admitted."""

    def __init__(self, crd: Mapping[str, Any]) -> None:
        spec = crd["spec"]
        version = next(v for v in spec["versions"] if v.get("storage"))
        self.kind = spec["names"]["kind"]
        self.api_version = f"{spec['group']}/{version['name']}"
        self.schema = version["schema"]["openAPIV3Schema"]
        self._jsonschema = jsonschema.Draft202012Validator(
            _translate(self.schema, at_root=True), format_checker=_FORMATS
        )
        self._env = celpy.Environment()
        self._programs: dict[str, celpy.Runner] = {}

    def rules(self) -> list[tuple[str, dict[str, Any]]]:
        """(schema path, rule) for every `x-kubernetes-validations` entry, for coverage tests."""
        found: list[tuple[str, dict[str, Any]]] = []

        def walk(node: Mapping[str, Any], path: str) -> None:
            found.extend((path, rule) for rule in node.get("x-kubernetes-validations", []))
            for name, child in node.get("properties", {}).items():
                walk(child, f"{path}.{name}" if path else name)
            if "items" in node:
                walk(node["items"], f"{path}[*]")

        walk(self.schema, "")
        return found

    def validate(self, obj: Mapping[str, Any]) -> list[FieldError]:
        body = copy.deepcopy(dict(obj))
        errors: list[FieldError] = []
        if body.get("apiVersion") != self.api_version:
            errors.append(unsupported("apiVersion", body.get("apiVersion"), [self.api_version]))
        if body.get("kind") != self.kind:
            errors.append(unsupported("kind", body.get("kind"), [self.kind]))
        _apply_defaults(self.schema, body)
        found = sorted(self._jsonschema.iter_errors(body), key=lambda e: list(e.path))
        schema_errors = [e for error in found for e in _schema_error(error)]
        errors += schema_errors
        errors += _list_duplicates(self.schema, body, "")
        # As apiextensions-apiserver's hasBlockingErr: a wrong type, a missing required field,
        # an unsupported enum value or a passed maxLength/maxItems keeps CEL from running (the
        # rules would see inputs of the wrong shape); pattern or bound errors do not.
        blocked = any(error.validator == "type" for error in found) or any(
            e.type in _BLOCKING for e in schema_errors)
        if not blocked:
            errors += self._cel(self.schema, body, "")
        return errors

    def _program(self, rule: str) -> celpy.Runner:
        if rule not in self._programs:
            self._programs[rule] = self._env.program(self._env.compile(rule))
        return self._programs[rule]

    def _cel(self, schema: Mapping[str, Any], value: Any, path: str) -> list[FieldError]:
        if value is None:
            return []
        errors: list[FieldError] = []
        for rule in schema.get("x-kubernetes-validations", []):
            if "oldSelf" in rule["rule"]:
                continue
            result: object
            try:
                result = self._program(rule["rule"]).evaluate({"self": json_to_cel(value)})
            except CELEvalError as exc:
                result = exc
            if isinstance(result, celtypes.BoolType) and bool(result):
                continue
            field = path + rule.get("fieldPath", "")
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            if isinstance(result, CELEvalError):
                message = f"{message} (evaluation error: {result.args[0] if result.args else ''})"
            reason = rule.get("reason")
            if reason == "FieldValueRequired":
                errors.append(required(field, message))
            elif reason == "FieldValueForbidden":
                errors.append(forbidden(field, message))
            else:
                errors.append(invalid(field, schema.get("type", "object"), message))
        if isinstance(value, dict):
            for name, child in schema.get("properties", {}).items():
                if name in value:
                    child_path = f"{path}.{name}" if path else name
                    errors += self._cel(child, value[name], child_path)
        elif isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                errors += self._cel(schema["items"], item, f"{path}[{i}]")
        return errors


_FORBIDDEN_KEYWORDS = {"$ref", "anyOf", "oneOf", "allOf", "not", "const", "title", "$defs"}


def structural_problems(crd: Mapping[str, Any]) -> list[str]:
    """What would keep the API server from accepting the schema as structural and bounded.

    Structural (k8s docs: "Specifying a structural schema"): a `type` everywhere, no `$ref`,
    no `additionalProperties` next to `properties`, no `uniqueItems`. Bounded (so CEL cost
    stays low): every string has maxLength (or an enum or a date-time format), every array
    maxItems. Documented: every field has a description (what `kubectl explain` prints).
    """
    schema = next(v for v in crd["spec"]["versions"] if v["storage"])["schema"]["openAPIV3Schema"]
    problems: list[str] = []

    def walk(node: Mapping[str, Any], path: str, documented: bool) -> None:
        for key in _FORBIDDEN_KEYWORDS & set(node):
            problems.append(f"{path}: `{key}` is not allowed")
        if node.get("uniqueItems"):
            problems.append(f"{path}: `uniqueItems: true` is not allowed; use a list type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: `properties` and `additionalProperties` together")
        kind = node.get("type")
        if kind is None and not node.get("x-kubernetes-int-or-string"):
            problems.append(f"{path}: no `type`")
        if documented and not node.get("description"):
            problems.append(f"{path}: no description for `kubectl explain`")
        if kind == "string" and "maxLength" not in node and "enum" not in node \
                and node.get("format") != "date-time":
            problems.append(f"{path}: string without maxLength")
        if kind == "array":
            if "maxItems" not in node:
                problems.append(f"{path}: array without maxItems")
            items = node.get("items", {})
            if items.get("type") == "object" and "x-kubernetes-list-type" not in node:
                problems.append(f"{path}: list of objects without x-kubernetes-list-type")
            if node.get("x-kubernetes-list-type") == "map":
                keys = node.get("x-kubernetes-list-map-keys", [])
                missing = [k for k in keys if k not in items.get("required", [])]
                if not keys or missing:
                    problems.append(f"{path}: map list keys must be required fields: {missing}")
            walk(items, f"{path}[*]", documented=False)
        if "default" in node:
            try:
                jsonschema.Draft202012Validator(_translate(node)).validate(node["default"])
            except jsonschema.ValidationError as exc:
                problems.append(f"{path}: default does not validate: {exc.message}")
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}", documented=True)

    for name, child in schema["properties"].items():
        if name in ("metadata", "apiVersion", "kind"):
            continue
        walk(child, name, documented=True)
    return problems
