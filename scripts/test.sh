#!/usr/bin/env bash
# Sets everything up and runs the checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
echo "==> ruff"
.venv/bin/ruff check homeport tests bench
echo "==> mypy"
.venv/bin/mypy homeport
echo "==> podman (the docker runtime's engine in the tests)"
eval "$(scripts/podman.sh)"
echo "==> pytest"
export HOMEPORT_VENV_CACHE=${HOMEPORT_VENV_CACHE:-$HOME/.cache/homeport-test-venvs}
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
