#!/usr/bin/env bash
# The test command: lint, type-check, then every test (unit, services, vars, inputs and the
# end-to-end deploy tests on real local Debian hosts, which need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy src
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
