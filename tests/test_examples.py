"""The runnable examples run and do what they say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    p = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_offline_agent_runs_calls_in_parallel() -> None:
    out = run("offline_agent.py")
    assert "answer Paris is warmer" in out and "status completed after 2 steps" in out
    seconds = float(re.search(r"two 0.5 s calls took ([0-9.]+) s", out).group(1))  # type: ignore[union-attr]
    assert seconds < 0.9
    assert "transcript: 9 events" in out


@pytest.mark.sandbox
def test_sandbox_session_example(tmp_path: Path) -> None:
    out = run("sandbox_session.py", str(tmp_path))
    assert "reading /etc/shadow: FileNotFoundError" in out or "reading /etc/shadow: PermissionError" in out
    assert "network: OSError" in out and "timed out = True | state kept = True" in out
    assert (tmp_path / "fig-1.png").stat().st_size > 1000


@pytest.mark.sandbox
def test_planner_delegates_code_work_to_a_code_interpreter_agent() -> None:
    out = run("planner_delegates.py")
    (line,) = [x for x in out.splitlines() if "coder ran code_interpreter:" in x]
    assert "1229" in line
    assert "planner got: There are 1229 primes below 10000." in out
    assert "answer: The coder counted 1229 primes below 10,000." in out
