"""The README's quickstarts run for real: Python and CLI against a llama.cpp server, the main job embedded."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.conftest import ROOT, Server

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


def env_for(server: Server) -> dict[str, str]:
    return os.environ | {"QWENKIT_BASE_URL": server.base_url, "QWENKIT_MODEL": server.model}


@pytest.mark.llama
def test_python_quickstart_runs_against_a_real_server(llama_server: Server, tmp_path: Path) -> None:
    (code,) = code_blocks(section("Python quickstart"), "python")
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                       env=env_for(llama_server))
    assert p.returncode == 0, p.stderr
    status = p.stdout.splitlines()[0].split()[0]
    assert status in ("completed", "max_steps")  # the loop ran to an end against the real model
    assert "user {" in p.stdout and "assistant {" in p.stdout


@pytest.mark.llama
def test_cli_quickstart_run_command_against_a_real_server(llama_server: Server, tmp_path: Path) -> None:
    (block,) = code_blocks(section("CLI quickstart"), "bash")
    line = next(ln for ln in block.splitlines() if ln.startswith("qwenkit run") and "calculator" in ln)
    argv = [*shlex.split(line.split("#")[0])[1:], "--json", "--max-steps", "2"]
    p = subprocess.run([sys.executable, "-m", "qwenkit.cli", *argv], capture_output=True, text=True, timeout=600,
                       env=env_for(llama_server), cwd=tmp_path)
    assert p.returncode in (0, 1), p.stderr  # 1: the small model used all its steps
    events = [json.loads(x) for x in p.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert "Traceback" not in p.stderr


@pytest.mark.llama
@pytest.mark.sandbox
@pytest.mark.slow
def test_main_job_on_the_embedded_model_runs_code_in_the_sandbox(gguf_path: Path, tmp_path: Path) -> None:
    """The README's first command, after set-up: `qwenkit run` on the embedded model with the interpreter."""
    setup = code_blocks(section("Set-up (two commands)"), "bash")[0]
    command = setup.split("&&", 1)[1].replace("\\\n", " ")
    argv = [*shlex.split(command.split("\n")[0])[1:], "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")} | {
        "QWENKIT_OUTPUTS": str(tmp_path / "out")}
    p = subprocess.run([sys.executable, "-m", "qwenkit.cli", *argv], capture_output=True, text=True, timeout=900,
                       env=env, cwd=tmp_path)
    assert p.returncode in (0, 1), p.stderr
    events = [json.loads(x) for x in p.stdout.splitlines()]
    results = [e["result"] for e in events if e["type"] == "tool_result"]
    assert any(r["name"] == "code_interpreter" and r["ok"] for r in results), results  # code ran in the sandbox
    finished = events[-1]["result"]
    assert finished["status"] in ("completed", "max_steps") and finished["answer"].strip()
