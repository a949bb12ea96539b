#!/usr/bin/env bash
# The test command: lint, type-check, then every test (unit, services, vars, inputs and the
# end-to-end deploy tests on real local Debian hosts, which need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy src
.venv/bin/lint-imports
# every packaged shell file (e.g. the activation library, src/pyclan/build/activation.sh)
find src -name '*.sh' -print0 | xargs -0 -r shellcheck  # each file names its shell (shebang or `# shellcheck shell=sh`)
exec .venv/bin/pytest "$@"
