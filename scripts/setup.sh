#!/usr/bin/env bash
# Installs Homeport into ./.venv (and the system packages it uses when run as root).
# Usage: scripts/setup.sh [--test]   (--test adds the test tools and servers)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  pkgs=(util-linux iproute2 pigz nginx-light)
  # The tests also run the docker runtime on Podman (scripts/podman.sh installs it) and import a
  # busybox image for the runtime's own tests.
  # awscli: Debian's is AWS CLI v2 (`aws logs tail`), at /usr/bin/aws; the venv has v1 from PyPI.
  [[ $want_test -eq 1 ]] && pkgs+=(postgresql busybox-static curl awscli)
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if (( ${#missing[@]} )); then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The real interpreter, never a pyenv shim (shims cost ~190 ms per start).
PY=${HOMEPORT_PYTHON:-$(python3 -c 'import sys, os; print(os.path.realpath(sys.executable))')}
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -U pip
fi
extra=""
[[ $want_test -eq 1 ]] && extra="[test]"
stamp=".venv/.homeport-installed$extra"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  echo "==> pip install -e .$extra"
  .venv/bin/pip install -q --disable-pip-version-check -e ".$extra"
  touch "$stamp"
fi
# The SageMaker Python SDK tests run the real SDK (v2 and v3) in venvs of their own.
[[ $want_test -eq 1 ]] && scripts/sdk-venvs.sh
echo "==> Homeport installed: $(.venv/bin/homeport --help >/dev/null && echo .venv/bin/homeport)"
