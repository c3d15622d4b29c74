"""Fixtures for the benchmark tests: the shared BFCL data and gold replies in each prompt format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def bfcl_data_dir() -> Path:
    """The BFCL test data: ``$QWENKIT_BFCL_DIR``, else ``shared/bench/bfcl`` beside the repository."""
    env = os.environ.get("QWENKIT_BFCL_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "bench" / "bfcl"


@pytest.fixture(scope="session")
def bfcl_dir() -> Path:
    path = bfcl_data_dir()
    if not (path / "BFCL_v4_simple_python.json").is_file():
        pytest.skip(f"BFCL test data not found at {path} (set QWENKIT_BFCL_DIR)")
    return path


def _gguf_path() -> Path | None:
    """The GGUF for server tests: ``$QWENKIT_TEST_GGUF``, else the tests' model (`TEST_MODEL`) if pulled."""
    env = os.environ.get("QWENKIT_TEST_GGUF")
    if env:
        return Path(env) if Path(env).is_file() else None
    from qwenkit.llm.store import ModelStore
    from tests.gguf import TEST_MODEL

    store = ModelStore(progress=False)
    return store.target(TEST_MODEL) if store.is_pulled(TEST_MODEL) else None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server() -> Iterator[tuple[str, str]]:
    """A real ``llama_cpp.server`` on 127.0.0.1 serving the Qwen GGUF; yields (base_url, model name)."""
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    gguf = _gguf_path()
    if gguf is None:
        pytest.skip("no Qwen GGUF: run 'qwenkit models pull' (or set QWENKIT_TEST_GGUF)")
    import tempfile

    port = _free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - not a pipe: llama.cpp logs enough to fill one and block
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "qwen-test",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
         # llama-cpp-python's default is half the cores: one thread on a 2-core CI machine.
         "--n_threads", str(os.cpu_count() or 1)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")[-2000:]
                pytest.fail(f"llama_cpp.server exited early: {err}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not answer within 180 s")
                time.sleep(0.5)
        yield base, "qwen-test"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
