#!/usr/bin/env bash
# The test command (README and .ci/run): set up what the suite needs, then run every test, marked ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-vllm
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider "$@"
