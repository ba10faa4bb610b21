#!/usr/bin/env bash
# Creates the two SageMaker Python SDK venvs the SDK end-to-end tests run in
# (tests/e2e/test_sagemaker_sdk.py): .venv-sdk2 (sagemaker 2.257.*) and .venv-sdk3 (sagemaker 3.x).
# They are separate from .venv (whose pins conflict) and from each other (both are the
# `sagemaker` package). Idempotent: a venv whose stamp is present is left alone.
# Usage: scripts/sdk-venvs.sh [2] [3]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

# The real interpreter, never a pyenv shim (as scripts/setup.sh).
PY=${HOMEPORT_PYTHON:-$(python3 -c 'import sys, os; print(os.path.realpath(sys.executable))')}

make_venv() {  # dir, stamp content, pip requirement...
  local dir=$1 spec=$2
  shift 2
  local stamp="$dir/.homeport-sdk-installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$spec" ]]; then
    echo "==> $dir: $spec already installed"
    return
  fi
  echo "==> $dir: pip install $*"
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  printf '*\n' >"$dir/.gitignore"   # never shows up in git status
  # (pip's warnings about index locations missing on this machine are dropped)
  "$dir/bin/pip" install -q --disable-pip-version-check -U pip 2> >(grep -v "is ignored: it is neither" >&2)
  "$dir/bin/pip" install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$spec" >"$stamp"
}

want=("$@")
(( ${#want[@]} )) || want=(2 3)
for v in "${want[@]}"; do
  case $v in
    2) make_venv .venv-sdk2 "sagemaker==2.257.*" "sagemaker==2.257.*" ;;
    3) make_venv .venv-sdk3 "sagemaker>=3,<4" "sagemaker>=3,<4" ;;
    *) echo "unknown SDK major version: $v" >&2; exit 2 ;;
  esac
done
