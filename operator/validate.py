"""Checks beyond what the API server's schema can do, reported in Kubernetes' own wording.

A `FieldError` prints like apimachinery's `field.Error` (`spec.fallbacks[1].provider: Not found:
"anthropic"`), so a message reads the same in a condition, in `tollgate validate` and in
`kubectl apply`'s rejection. A `Problem` is a field error found on one object, with the
condition `reason` it maps to and a severity: an Error keeps the object from being served as
declared (its Ready condition turns False, `tollgate validate` exits 1); a Warning does not.

Pure functions only: nothing here talks to the API server or reads files.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tollgate.operator.models import (
    DNS_SUBDOMAIN,
    NAME_MAX,
    ListType,
    ProviderCredentialSpec,
    Rule,
    SecretKeyRef,
    VirtualKeySpec,
)

__all__ = [
    "CredentialIndex",
    "CredentialInfo",
    "ErrorType",
    "FieldError",
    "ObjectRef",
    "Problem",
    "Reason",
    "SecretIndex",
    "Severity",
    "SPEC_MODELS",
    "check_metadata",
    "check_object",
    "check_rules",
    "check_timezone",
    "duplicate",
    "forbidden",
    "invalid",
    "not_found",
    "parse_spec",
    "required",
    "resolve_provider",
    "secret_value",
    "too_long",
    "too_many",
    "unsupported",
]

M = TypeVar("M", bound=BaseModel)


class ErrorType(StrEnum):
    """apimachinery's `field.ErrorType` strings."""

    NOT_FOUND = "Not found"
    REQUIRED = "Required value"
    DUPLICATE = "Duplicate value"
    INVALID = "Invalid value"
    NOT_SUPPORTED = "Unsupported value"
    FORBIDDEN = "Forbidden"
    TOO_LONG = "Too long"
    TOO_MANY = "Too many"


_VALUELESS = {ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG}


def _quote(value: Any) -> str:
    """Go's %q for strings, plain JSON for the rest, as `field.Error` prints bad values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class FieldError:
    """One bad field. `str()` is the Kubernetes wording: `<path>: <type>[: <value>][: <detail>]`."""

    field: str
    type: ErrorType
    value: Any = None
    detail: str = ""

    def __str__(self) -> str:
        body = str(self.type)
        if self.type not in _VALUELESS:
            body += f": {_quote(self.value)}"
        if self.detail:
            body += f": {self.detail}"
        return f"{self.field}: {body}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, ErrorType.REQUIRED, detail=detail)


def not_found(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(field, ErrorType.NOT_FOUND, value, detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, ErrorType.INVALID, value, detail)


def duplicate(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(field, ErrorType.DUPLICATE, value, detail)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, ErrorType.FORBIDDEN, detail=detail)


def unsupported(field: str, value: Any, supported: Sequence[str]) -> FieldError:
    listed = ", ".join(_quote(s) for s in supported)
    return FieldError(field, ErrorType.NOT_SUPPORTED, value, f"supported values: {listed}")


def too_long(field: str, maximum: int) -> FieldError:
    detail = f"may not be more than {maximum} characters"
    return FieldError(field, ErrorType.TOO_LONG, detail=detail)


def too_many(field: str, actual: int, maximum: int) -> FieldError:
    return FieldError(field, ErrorType.TOO_MANY, actual, f"must have at most {maximum} items")


class Severity(StrEnum):
    ERROR = "Error"
    WARNING = "Warning"


class Reason(StrEnum):
    """Condition reasons: one CamelCase word naming the cause."""

    ACCEPTED = "Accepted"
    INVALID_SPEC = "InvalidSpec"
    PROVIDER_CREDENTIAL_NOT_FOUND = "ProviderCredentialNotFound"
    PROVIDER_CREDENTIAL_NOT_READY = "ProviderCredentialNotReady"
    PROVIDER_NOT_SUPPORTED = "ProviderNotSupported"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
    INVALID_SECRET = "InvalidSecret"
    TOKEN_PENDING = "TokenPending"
    INVALID_TOKEN = "InvalidToken"
    DUPLICATE_TOKEN = "DuplicateToken"
    DUPLICATE_NAME = "DuplicateName"
    NO_PROVIDERS = "NoProviders"
    MODEL_NOT_SERVED = "ModelNotServed"
    LIMIT_EXCEEDED = "LimitExceeded"


_RETRYABLE = {
    Reason.PROVIDER_CREDENTIAL_NOT_FOUND,
    Reason.PROVIDER_CREDENTIAL_NOT_READY,
    Reason.SECRET_NOT_FOUND,
    Reason.SECRET_KEY_NOT_FOUND,
    Reason.INVALID_SECRET,
    Reason.TOKEN_PENDING,
    Reason.NO_PROVIDERS,
}


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Problem:
    """A field error found on one object, with its condition reason and severity."""

    obj: ObjectRef
    error: FieldError
    reason: Reason
    severity: Severity = Severity.ERROR

    @property
    def retryable(self) -> bool:
        """True when another object (a Secret, a ProviderCredential) may yet fix it: a kopf
        handler raises TemporaryError for these, PermanentError for the rest."""
        return self.reason in _RETRYABLE

    def __str__(self) -> str:
        return str(self.error)


# --- spec parsing: schema errors and CEL-rule twins -----------------------------------------


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def parse_spec(model: type[M], spec: Any, path: str = "spec") -> tuple[M | None, list[FieldError]]:
    """Validate a spec as the API server would: schema, then every CEL rule's Python twin.

    Strict, through JSON, like the API server: no coercion of "600" to 600, no snake_case keys.
    """
    if spec is None:
        return None, [required(path)]
    try:
        parsed = model.model_validate_json(json.dumps(spec, default=_json_default))
    except ValidationError as exc:
        return None, _from_pydantic(exc, path)
    errors = check_rules(parsed, path)
    return (None if errors else parsed), errors


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if value is None:
        return "null"
    return "object"


_EXPECTED_TYPE = {
    "string_type": "string",
    "int_type": "integer",
    "int_from_float": "integer",
    "bool_type": "boolean",
    "tuple_type": "array",
    "list_type": "array",
    "model_type": "object",
    "model_attributes_type": "object",
    "dict_type": "object",
}


def _path(base: str, loc: Sequence[int | str]) -> str:
    out = base
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _from_pydantic(exc: ValidationError, base: str) -> list[FieldError]:
    items = exc.errors(include_url=False)
    locs = [tuple(item["loc"]) for item in items]
    errors: list[FieldError] = []
    for item, loc in zip(items, locs, strict=True):
        kind, value, ctx = item["type"], item.get("input"), item.get("ctx", {})
        # "too short after validation" only echoes broken items; the item errors say it better.
        if kind in ("too_short", "too_long") and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other in locs
        ):
            continue
        field = _path(base, loc)
        if kind == "missing":
            errors.append(required(field))
        elif kind == "extra_forbidden":
            errors.append(forbidden(field, "field not declared in schema"))
        elif kind in _EXPECTED_TYPE:
            errors.append(invalid(field, _json_type(value),
                                  f"must be of type {_EXPECTED_TYPE[kind]}"))
        elif kind in ("enum", "literal_error"):
            if not isinstance(value, str):
                errors.append(invalid(field, _json_type(value), "must be of type string"))
            else:
                supported = re.findall(r"'([^']*)'", ctx.get("expected", ""))
                errors.append(unsupported(field, value, supported))
        elif kind == "string_too_long":
            errors.append(too_long(field, ctx["max_length"]))
        elif kind == "string_too_short":
            errors.append(invalid(field, value, f"should be at least {ctx['min_length']} chars "
                                                "long"))
        elif kind == "too_long":
            errors.append(too_many(field, ctx["actual_length"], ctx["max_length"]))
        elif kind == "too_short":
            errors.append(invalid(field, ctx["actual_length"],
                                  f"should have at least {ctx['min_length']} items"))
        elif kind == "string_pattern_mismatch":
            errors.append(invalid(field, value, f"should match '{ctx['pattern']}'"))
        elif kind == "greater_than_equal":
            errors.append(invalid(field, value, f"should be greater than or equal to {ctx['ge']}"))
        elif kind == "less_than_equal":
            errors.append(invalid(field, value, f"should be less than or equal to {ctx['le']}"))
        elif kind.startswith(("datetime", "date_")):
            shown = value if isinstance(value, str) else _json_type(value)
            errors.append(invalid(field, shown, "must be of type date-time"))
        else:
            errors.append(invalid(field, value, item["msg"]))
    return errors


def _schema_type(value: Any) -> str:
    return "object" if isinstance(value, BaseModel) else _json_type(value)


def _rule_error(rule: Rule, field: str, value: Any) -> FieldError:
    """A failed rule, worded as the API server words a failed `x-kubernetes-validations` rule."""
    if rule.field_path:
        field += rule.field_path
    if rule.reason == "FieldValueRequired":
        return required(field, rule.message)
    if rule.reason == "FieldValueForbidden":
        return forbidden(field, rule.message)
    return invalid(field, _schema_type(value), rule.message)


def _key_of(item: Any, keys: Sequence[str]) -> dict[str, Any]:
    fields = type(item).model_fields
    by_alias = {(info.alias or name): name for name, info in fields.items()}
    return {key: getattr(item, by_alias[key]) for key in keys}


def _duplicates(list_type: ListType, field: str, items: Sequence[Any]) -> list[FieldError]:
    if list_type.type == "atomic":
        return []
    seen: set[Any] = set()
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        key = _key_of(item, list_type.map_keys) if list_type.type == "map" else item
        hashable = tuple(key.values()) if isinstance(key, dict) else key
        if hashable in seen:
            errors.append(duplicate(f"{field}[{i}]", key))
        seen.add(hashable)
    return errors


@dataclass(frozen=True)
class _FieldPlan:
    name: str
    alias: str
    rules: tuple[Rule, ...]
    list_types: tuple[ListType, ...]


@cache
def _plan(model: type[BaseModel]) -> tuple[_FieldPlan, ...]:
    """Per model class, once: which fields carry rules or list types (check_rules is hot)."""
    return tuple(
        _FieldPlan(
            name,
            info.alias or name,
            tuple(m for m in info.metadata if isinstance(m, Rule)),
            tuple(m for m in info.metadata if isinstance(m, ListType)),
        )
        for name, info in model.model_fields.items()
    )


def check_rules(model: BaseModel, path: str) -> list[FieldError]:
    """Evaluate the Python twin of every CEL rule (and list-type uniqueness) under `model`.

    Mirrors the API server: rules on a value run only when the value is set, field paths are
    appended, and every failing rule is reported, not just the first.
    """
    errors: list[FieldError] = []
    for rule in getattr(type(model), "__rules__", ()):
        if not rule.check(model):
            errors.append(_rule_error(rule, path, model))
    for plan in _plan(type(model)):
        value = getattr(model, plan.name)
        if value is None:
            continue
        field = f"{path}.{plan.alias}"
        for rule in plan.rules:
            if not rule.check(value):
                errors.append(_rule_error(rule, field, value))
        for list_type in plan.list_types:
            errors.extend(_duplicates(list_type, field, value))
        if isinstance(value, BaseModel):
            errors.extend(check_rules(value, field))
        elif isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
            for i, item in enumerate(value):
                errors.extend(check_rules(item, f"{field}[{i}]"))
    return errors


_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_metadata(body: Mapping[str, Any]) -> list[FieldError]:
    """What the API server checks of a custom resource's name and namespace."""
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping):
        return [required("metadata")]
    errors: list[FieldError] = []
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        errors.append(required("metadata.name", "name is required"))
    elif len(name) > NAME_MAX:
        errors.append(too_long("metadata.name", NAME_MAX))
    elif not _SUBDOMAIN.match(name):
        errors.append(invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist "
                              "of lower case alphanumeric characters, '-' or '.'"))
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not _LABEL.match(namespace)
                                  or len(namespace) > 63):
        errors.append(invalid("metadata.namespace", namespace, "a lowercase RFC 1123 label "
                              "must consist of lower case alphanumeric characters or '-'"))
    return errors


SPEC_MODELS: dict[str, type[BaseModel]] = {
    "VirtualKey": VirtualKeySpec,
    "ProviderCredential": ProviderCredentialSpec,
}


def check_object(body: Mapping[str, Any]) -> list[FieldError]:
    """Everything admission would reject about one VirtualKey or ProviderCredential body:
    metadata, schema and every CEL rule (through its Python twin)."""
    errors = check_metadata(body)
    _, spec_errors = parse_spec(SPEC_MODELS[str(body.get("kind"))], body.get("spec"))
    return errors + spec_errors


def check_timezone(field: str, name: str) -> FieldError | None:
    """An IANA zone the gateway can load; a budget period can't start in an unknown zone."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return invalid(field, name, "must be an IANA time zone name such as 'UTC' or "
                                    "'Europe/Berlin'")
    return None


# --- Secrets --------------------------------------------------------------------------------


class SecretIndex:
    """Secret bodies (as the API returns them, or as manifests with `stringData`) by name.

    Values are decoded once and only ever handed to hashing or the credentials Secret; they
    never reach a message.
    """

    def __init__(self, secrets: Iterable[Mapping[str, Any]], complete: bool = True) -> None:
        self.complete = complete
        self._data: dict[tuple[str, str], dict[str, bytes]] = {}
        for body in secrets:
            metadata = body.get("metadata") or {}
            data: dict[str, bytes] = {}
            for key, value in (body.get("data") or {}).items():
                try:
                    data[key] = base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError):
                    continue
            for key, value in (body.get("stringData") or {}).items():
                data[key] = str(value).encode()
            self._data[(metadata.get("namespace", ""), metadata.get("name", ""))] = data

    def get(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self._data.get((namespace, name))


def secret_value(
    obj: ObjectRef, field: str, ref: SecretKeyRef, secrets: SecretIndex,
    key_field: str | None = None,
) -> tuple[bytes | None, Problem | None]:
    """The bytes of `ref` in `obj`'s namespace, or the problem that stops us reading them.

    With an incomplete index (offline: Secrets usually live outside git), a missing Secret is a
    Warning; a Secret that is present but lacks the key is an Error either way. A missing key is
    reported on `key_field` when given (the field that names the entry, when it is not
    `<field>.key`), else on `<field>.key`.
    """
    data = secrets.get(obj.namespace, ref.name)
    if data is None:
        severity = Severity.ERROR if secrets.complete else Severity.WARNING
        detail = "" if secrets.complete else "not among the manifests; it must exist in the cluster"
        error = not_found(f"{field}.name", ref.name, detail)
        return None, Problem(obj, error, Reason.SECRET_NOT_FOUND, severity)
    if not data.get(ref.key, b"").strip():
        what = "has no such key" if ref.key not in data else "holds an empty value under it"
        error = not_found(key_field or f"{field}.key", ref.key, f"Secret {ref.name!r} {what}")
        return None, Problem(obj, error, Reason.SECRET_KEY_NOT_FOUND)
    return data[ref.key], None


# --- ProviderCredential references ----------------------------------------------------------


@dataclass(frozen=True)
class CredentialInfo:
    """A ProviderCredential as VirtualKeys see it: its gateway name, and why it is not served."""

    ref: ObjectRef
    spec: ProviderCredentialSpec | None
    gateway_name: str
    not_served: str | None = None


class CredentialIndex:
    """Which ProviderCredential a name in a VirtualKey means.

    A name resolves in the VirtualKey's own namespace first, then in each shared namespace in
    order (the operator's `--credentials-namespace`); there are no other cross-namespace refs.
    """

    def __init__(self, infos: Iterable[CredentialInfo], shared_namespaces: Sequence[str]) -> None:
        self.shared = tuple(shared_namespaces)
        self._by_ns: dict[str, dict[str, CredentialInfo]] = {}
        for info in infos:
            self._by_ns.setdefault(info.ref.namespace, {})[info.ref.name] = info

    def lookup(self, namespace: str, name: str) -> CredentialInfo | None:
        for ns in (namespace, *self.shared):
            info = self._by_ns.get(ns, {}).get(name)
            if info is not None:
                return info
        return None

    def visible(self, namespace: str) -> list[CredentialInfo]:
        """Every credential a VirtualKey in `namespace` may name, nearest first, by name."""
        seen: dict[str, CredentialInfo] = {}
        for ns in (namespace, *self.shared):
            for name, info in sorted(self._by_ns.get(ns, {}).items()):
                seen.setdefault(name, info)
        return [seen[name] for name in sorted(seen)]


def resolve_provider(
    obj: ObjectRef, field: str, name: str, credentials: CredentialIndex
) -> tuple[CredentialInfo | None, Problem | None]:
    """The served credential `name` refers to, or why the reference can't be served."""
    info = credentials.lookup(obj.namespace, name)
    if info is None:
        where = [obj.namespace, *credentials.shared]
        detail = "no ProviderCredential of that name in namespace " + " or ".join(
            f"{ns!r}" for ns in dict.fromkeys(where))
        return None, Problem(obj, not_found(field, name, detail),
                             Reason.PROVIDER_CREDENTIAL_NOT_FOUND)
    if info.not_served is not None:
        error = invalid(field, name, f"{info.ref} is not served: {info.not_served}")
        return None, Problem(obj, error, Reason.PROVIDER_CREDENTIAL_NOT_READY)
    return info, None
