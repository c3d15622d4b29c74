"""``--kernels`` and ``qwenkit doctor --kernels``: bad values and unreachable gateways are one line, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def qwenkit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")}
    return subprocess.run([sys.executable, "-m", "qwenkit.cli", *args], capture_output=True, text=True, timeout=60,
                          env=env, stdin=subprocess.DEVNULL)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_bad_kernels_value_is_one_line_naming_the_flag() -> None:
    for bad in ("remote", "gateway:ftp://x", "gateway:http://127.0.0.1:99999"):
        p = qwenkit("run", "hi", "--tool", "code_interpreter", "--kernels", bad, "--base-url",
                    "http://127.0.0.1:1/v1", "--model", "m")
        assert p.returncode == 2 and "--kernels" in p.stderr and "Traceback" not in p.stderr, (bad, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1


def test_doctor_on_a_gateway_that_does_not_answer() -> None:
    p = qwenkit("doctor", "--kernels", f"gateway:http://127.0.0.1:{_dead_port()}")
    assert p.returncode == 2 and "does not answer" in p.stdout + p.stderr and "Traceback" not in p.stderr
