"""Checks for ``qwenkit doctor``: does the llama.cpp build run on this CPU?

A llama-cpp-python built with ``-march=native`` on one machine (or with AVX-512/AMX kernels) dies with
"Illegal instruction" (SIGILL) on a CPU that lacks those instructions, sometimes only once a model is
evaluated. The check therefore imports llama_cpp and evaluates a few tokens in a child process, so a
crash is reported instead of killing the caller.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REBUILD = "rebuild it for this CPU: QWENKIT_LLAMA_FORCE=1 scripts/install_llama_cpp.sh"

_PROBE = """
import sys
import llama_cpp

llama_cpp.llama_backend_init()
print("version", llama_cpp.__version__)
print("system", llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip())
if len(sys.argv) > 1:
    from llama_cpp import Llama

    llm = Llama(model_path=sys.argv[1], n_ctx=256, n_batch=64, verbose=False)
    llm.eval(llm.tokenize(b"def add(a, b):\\n    return", add_bos=False))
    print("eval", llm.n_tokens)
"""


@dataclass(frozen=True)
class Check:
    """The outcome of one doctor check.

    Attributes:
        ok: Whether it passed.
        summary: One line for the user; says what to do when it failed.
        detail: More, e.g. llama.cpp's CPU features or the tail of the child's stderr.
    """

    ok: bool
    summary: str
    detail: str = ""


def check_llama_cpp(
    model: str | Path | None = None, *, python: str = sys.executable, timeout: float = 180.0
) -> Check:
    """Import llama-cpp-python in a child process and, given a GGUF, evaluate a few tokens with it.

    Args:
        model: GGUF to evaluate. ``None``: the store's default model if it is pulled, else import only.
        python: Interpreter to test.
        timeout: Seconds before the child is declared hung.
    """
    if model is None:
        model = _default_model()
    cmd = [python, "-c", _PROBE] + ([str(model)] if model is not None else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Check(False, f"llama-cpp-python did not finish its self-test in {timeout:g} s")
    except OSError as err:
        return Check(False, f"could not run {python}: {err}")
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    if proc.returncode == -signal.SIGILL:
        return Check(False, "llama-cpp-python crashes with 'Illegal instruction' (SIGILL): it was built for "
                            f"CPU instructions this machine does not run; {REBUILD}", lines.get("system", tail))
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return Check(False, f"llama-cpp-python crashed with {name} during its self-test; {REBUILD}", tail)
    if proc.returncode != 0:
        if "No module named 'llama_cpp'" in proc.stderr:
            return Check(False, "llama-cpp-python is not installed (needed for the embedded backend): "
                                "run scripts/install_llama_cpp.sh")
        return Check(False, f"llama-cpp-python failed its self-test (exit {proc.returncode})", tail)
    what = f"evaluated {Path(model).name}" if model is not None else "imported (no model pulled to evaluate)"
    return Check(True, f"llama-cpp-python {lines.get('version', '?')} works: {what}", lines.get("system", ""))


def _default_model() -> Path | None:
    from qwenkit.llm.store import DEFAULT_MODEL, ModelStore

    store = ModelStore(progress=False)
    return store.target(DEFAULT_MODEL) if store.is_pulled(DEFAULT_MODEL) else None
