"""`tollgate render -f DIR` and `tollgate validate -f DIR`: the operator's code, without a cluster.

For GitOps repositories: read every VirtualKey, ProviderCredential and Secret manifest under a
folder, run the same `render()` the operator runs, and print either the GatewayConfig it would
serve or every problem with its file, line and field. Other kinds are ignored, so the folder
may be a whole kustomize tree.

Offline, a Secret missing from the folder is a warning (it usually lives outside git, sealed or
external); `require_secrets=True` makes it an error. A VirtualKey whose token the operator would
generate can't be rendered offline; give it `tokenSHA256` to include it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from tollgate.operator.models import API_VERSION, GROUP
from tollgate.operator.render import Rendered, RenderOptions, dump_yaml, render
from tollgate.operator.validate import ObjectRef, Severity, duplicate, unsupported

__all__ = ["Manifests", "Source", "load_manifests", "render_main", "validate_main"]

_KINDS = ("VirtualKey", "ProviderCredential")
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, order=True)
class Source:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Manifests:
    """The objects found under a folder, and where each came from."""

    virtual_keys: list[dict[str, Any]] = field(default_factory=list)
    provider_credentials: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[ObjectRef, Source] = field(default_factory=dict)
    errors: list[tuple[Source, str]] = field(default_factory=list)
    """Problems that stop an object from being read at all (bad YAML, wrong apiVersion)."""


class _Loader(yaml.SafeLoader):
    """YAML as the API server receives it from kubectl: timestamps stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        path for path in root.rglob("*")
        if path.is_file() and path.suffix in _SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def _documents(path: Path, errors: list[tuple[Source, str]]) -> Iterator[tuple[int, Any]]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append((Source(str(path), 0), f"cannot read the file: {exc}"))
        return
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            yield node.start_mark.line + 1, loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        errors.append((Source(str(path), line), f"not valid YAML: {getattr(exc, 'problem', exc)}"))
    finally:
        loader.dispose()


def _objects(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        return
    if document.get("kind") == "List" and isinstance(document.get("items"), list):
        for item in document["items"]:
            yield from _objects(item)
    else:
        yield document


def load_manifests(directory: str | Path, namespace: str = "default") -> Manifests:
    """Every VirtualKey, ProviderCredential and Secret under `directory` (or in one file);
    objects without a namespace get `namespace`, as `kubectl apply -n` would give them."""
    found = Manifests()
    root = Path(directory)
    if not root.exists():
        found.errors.append((Source(str(root), 0), "no such file or folder"))
        return found
    for path in _files(root):
        for line, document in _documents(path, found.errors):
            for body in _objects(document):
                _add(found, body, Source(str(path), line), namespace)
    return found


def _add(found: Manifests, body: dict[str, Any], source: Source, namespace: str) -> None:
    kind, api_version = body.get("kind"), body.get("apiVersion")
    is_ours = kind in _KINDS and str(api_version).split("/")[0] == GROUP
    is_secret = kind == "Secret" and api_version == "v1"
    if not (is_ours or is_secret):
        return
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    body = {**body, "metadata": {**metadata, "namespace": metadata.get("namespace") or namespace}}
    ref = ObjectRef(str(kind), body["metadata"]["namespace"], str(metadata.get("name")))
    if is_ours and api_version != API_VERSION:
        error = unsupported("apiVersion", api_version, [API_VERSION])
        found.errors.append((source, f"{ref}: {error}"))
        return
    if ref in found.sources:
        error = duplicate("metadata.name", ref.name, f"also defined at {found.sources[ref]}")
        found.errors.append((source, f"{ref}: {error}"))
        return
    found.sources[ref] = source
    if kind == "VirtualKey":
        found.virtual_keys.append(body)
    elif kind == "ProviderCredential":
        found.provider_credentials.append(body)
    else:
        found.secrets.append(body)


def _run(directory: str | Path, namespace: str, shared_namespaces: Sequence[str],
         require_secrets: bool) -> tuple[Manifests, Rendered]:
    manifests = load_manifests(directory, namespace)
    options = RenderOptions(shared_namespaces=tuple(shared_namespaces),
                            secrets_complete=require_secrets)
    rendered = render(manifests.virtual_keys, manifests.provider_credentials, manifests.secrets,
                      options)
    return manifests, rendered


def _report(manifests: Manifests, rendered: Rendered, out: TextIO) -> tuple[int, int]:
    """Print every problem as `file:line: Kind ns/name: field: ...`; returns (errors, warnings)."""
    lines: list[tuple[Source, str]] = [(source, f"error: {text}")
                                       for source, text in manifests.errors]
    warnings = 0
    for problem in rendered.problems:
        source = manifests.sources.get(problem.obj, Source("?", 0))
        level = "error" if problem.severity is Severity.ERROR else "warning"
        warnings += problem.severity is Severity.WARNING
        lines.append((source, f"{level}: {problem.obj}: {problem}"))
    for source, text in sorted(lines, key=lambda pair: pair[0]):
        print(f"{source}: {text}", file=out)
    return len(lines) - warnings, warnings


def validate_main(
    directory: str | Path,
    *,
    namespace: str = "default",
    shared_namespaces: Sequence[str] = (),
    require_secrets: bool = False,
    stdout: TextIO | None = None,
) -> int:
    """Report every schema, CEL-rule and cross-reference problem; 1 if any is an error."""
    out = stdout or sys.stdout
    manifests, rendered = _run(directory, namespace, shared_namespaces, require_secrets)
    errors, warnings = _report(manifests, rendered, out)
    objects = len(manifests.virtual_keys) + len(manifests.provider_credentials)
    print(f"{objects} objects checked: {errors} errors, {warnings} warnings", file=out)
    return 1 if errors else 0


def render_main(
    directory: str | Path,
    *,
    namespace: str = "default",
    shared_namespaces: Sequence[str] = (),
    require_secrets: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Print the GatewayConfig YAML the operator would serve; problems go to stderr, and any
    error (an object left out or narrowed) makes the exit code 1."""
    manifests, rendered = _run(directory, namespace, shared_namespaces, require_secrets)
    errors, _ = _report(manifests, rendered, stderr or sys.stderr)
    (stdout or sys.stdout).write(dump_yaml(rendered.config))
    return 1 if errors else 0
