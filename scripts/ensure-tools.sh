#!/usr/bin/env bash
# Installs the system tools the tests and benchmark need, when missing: redis-server and wrk
# from Debian's packages. Idempotent; a no-op on a machine that has them.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "ensure-tools: installing ${missing[*]} from Debian's packages" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
