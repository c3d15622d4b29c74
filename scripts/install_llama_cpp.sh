#!/usr/bin/env bash
# Build and install llama-cpp-python (with its OpenAI-compatible server) for the CPU.
#
# PyPI has no CPU wheel, so pip compiles llama.cpp (about 5 minutes on 2 cores). A native build
# (-march=native) may emit instructions (AMX, AVX-512) that some virtual CPUs advertise but do not run,
# which kills the process with "Illegal instruction"; so native detection is off and the instruction
# sets are named explicitly. --no-cache-dir keeps pip from reusing a wheel built with other flags.
#
# Idempotent: skips the build when `import llama_cpp` works and the backend starts without crashing.
#
# Environment:
#   PYTHON                  interpreter to install into (default python3)
#   QWENKIT_LLAMA_AVX512=1  also build the AVX-512 kernels (only for hosts known to run them)
#   QWENKIT_LLAMA_FORCE=1   rebuild even when the installed build works
set -euo pipefail

LLAMA_VERSION="0.3.36"
PY="${PYTHON:-python3}"

works() {
  # qwenkit's doctor check evaluates the default model (if pulled) in a child process, so a build that
  # crashes (SIGILL) only once it computes is caught; without qwenkit, import and start the backend.
  "$PY" - <<'PY' >/dev/null 2>&1
import sys

try:
    from qwenkit.llm.doctor import check_llama_cpp
except ImportError:
    import llama_cpp

    llama_cpp.llama_backend_init()
    llama_cpp.llama_print_system_info()
    sys.exit(0)
sys.exit(0 if check_llama_cpp().ok else 1)
PY
}

if [ "${QWENKIT_LLAMA_FORCE:-0}" != 1 ] && works; then
  echo "llama-cpp-python $("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)') already works" >&2
  exit 0
fi

if ! command -v c++ >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
  else
    echo "a C++ compiler is needed: install build-essential (Debian/Ubuntu) and rerun" >&2
    exit 1
  fi
fi

AVX512=OFF
if [ "${QWENKIT_LLAMA_AVX512:-0}" = 1 ]; then AVX512=ON; fi
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=${AVX512} -DLLAMA_CURL=OFF"
export FORCE_CMAKE=1
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

start=$(date +%s)
echo "building llama-cpp-python ${LLAMA_VERSION} (CMAKE_ARGS=${CMAKE_ARGS}); this takes about 5 minutes on 2 cores" >&2
"$PY" -m pip install --disable-pip-version-check --no-cache-dir --force-reinstall --no-deps \
  "llama-cpp-python==${LLAMA_VERSION}" >&2
# Dependencies (numpy, jinja2, diskcache, and the server's fastapi/uvicorn/...) come from wheels.
"$PY" -m pip install --quiet --disable-pip-version-check "llama-cpp-python[server]==${LLAMA_VERSION}" >&2

if ! works; then
  echo "llama-cpp-python was built but crashes on import; run 'qwenkit doctor' for details" >&2
  exit 1
fi
echo "llama-cpp-python ${LLAMA_VERSION} built in $(( $(date +%s) - start )) s" >&2
