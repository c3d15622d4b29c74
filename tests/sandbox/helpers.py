"""Shared test helpers for the sandbox: availability, and a look at the process table."""

from __future__ import annotations

import functools
import os

import psutil
import pytest

from qwenkit.sandbox.isolation import BubblewrapPolicy


@functools.cache
def bubblewrap_reason() -> str:
    """Why bubblewrap cannot run here ('' when it can)."""
    check = BubblewrapPolicy().check()
    return "" if check.ok else check.reason()


def require_bubblewrap() -> None:
    """Skip the test when bubblewrap is unusable here; fail instead when QWENKIT_REQUIRE_SANDBOX=1 (CI)."""
    reason = bubblewrap_reason()
    if not reason:
        return
    if os.environ.get("QWENKIT_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"bubblewrap sandbox required but unavailable: {reason}")
    pytest.skip(f"bubblewrap sandbox unavailable: {reason}")


def _is_kernel_process(proc: psutil.Process) -> bool:
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return "bwrap" in cmd or "ipykernel" in cmd or "qwenkit/launch.py" in cmd or "_launch.py" in cmd


def descendant_kernel_processes() -> list[psutil.Process]:
    """Live bwrap / ipykernel / launcher processes descending from this test process."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if _is_kernel_process(proc) and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def kernel_processes(markers: tuple[str, ...]) -> list[psutil.Process]:
    """Live processes anywhere whose command line mentions one of ``markers`` (per-kernel dirs)."""
    found = []
    for proc in psutil.process_iter():
        try:
            cmd = " ".join(proc.cmdline())
            if any(m in cmd for m in markers) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kernel_python_process(root_pid: int) -> psutil.Process:
    """The ipykernel process under the launched process ``root_pid`` (bubblewrap's, when sandboxed)."""
    root = psutil.Process(root_pid)
    for proc in [root, *root.children(recursive=True)]:
        cmd = " ".join(proc.cmdline())
        if "launch.py" in cmd and "bwrap" not in proc.name():
            return proc
    raise AssertionError(f"no kernel process under pid {root_pid}")
