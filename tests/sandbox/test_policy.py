"""Isolation policies: the bubblewrap command line, refusal without bubblewrap, the explicit
unsandboxed policy (warns on every start), and the doctor report."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenkit.sandbox import (
    BubblewrapPolicy,
    KernelSession,
    ResourceLimits,
    SandboxUnavailable,
    UnsandboxedPolicy,
    doctor_report,
    get_policy,
)
from qwenkit.sandbox.cpu import detect_cpu_control
from qwenkit.sandbox.isolation.base import KernelDirs, LaunchRequest
from qwenkit.sandbox.limits import MiB


@pytest.fixture
def request_() -> Iterator[LaunchRequest]:
    dirs = KernelDirs.create()
    yield LaunchRequest(dirs=dirs, limits=ResourceLimits(tmp_bytes=5 * MiB), write_cap=1000, mpl_seed=None,
                        kernel_args=("-f", str(dirs.connection_file)))
    dirs.remove()


def test_bubblewrap_command_line(request_: LaunchRequest) -> None:
    plan = BubblewrapPolicy().plan(request_)
    argv = plan.argv
    bwrap = argv.index(next(a for a in argv if a.endswith("bwrap")))
    inner = argv[bwrap:argv.index("--", bwrap)]
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                 "--disable-userns", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in inner, flag
    assert "--share-net" not in argv
    assert inner[inner.index("--cap-drop") + 1] == "ALL"
    windows = [inner[i:i + 4] for i in range(len(inner))]
    assert ["--size", str(5 * MiB), "--tmpfs", "/tmp"] in windows  # size-limited /tmp
    assert ["--size", str(ResourceLimits().workdir_bytes), "--tmpfs", "/workspace"] in windows
    assert ["--bind", str(request_.dirs.conn), str(request_.dirs.conn)] == inner[
        inner.index("--bind"):inner.index("--bind") + 3]
    assert "--remount-ro" in inner and inner[inner.index("--chdir") + 1] == "/workspace"
    # The launched process itself gets no inherited environment either.
    assert plan.env == {"PATH": "/usr/bin:/bin"}
    assert not any("OPENAI" in a or "API_KEY" in a for a in argv)
    if os.geteuid() == 0:
        setpriv = next(i for i, a in enumerate(argv) if a.endswith("setpriv"))
        assert setpriv < bwrap and "--reuid=65534" in argv and "--bounding-set=-all" in argv
        assert plan.lock_down == [request_.dirs.conn]
    launcher = argv[argv.index("-I") + 1]
    assert launcher == "/opt/qwenkit/launch.py" and "NPROC=256" in argv and "CORE=0" in argv


def test_unsandboxed_command_line_skips_nproc(request_: LaunchRequest) -> None:
    plan = UnsandboxedPolicy().plan(request_)
    assert "bwrap" not in " ".join(plan.argv) and not any(a.startswith("NPROC=") for a in plan.argv)
    assert "AS=" + str(ResourceLimits().address_space_bytes) in plan.argv
    assert "OPENAI_API_KEY" not in plan.env and plan.cwd == str(request_.dirs.host_work)


def test_get_policy() -> None:
    assert isinstance(get_policy(), BubblewrapPolicy) and isinstance(get_policy("unsandboxed"), UnsandboxedPolicy)
    custom = BubblewrapPolicy(sandbox_uid=12345)
    assert get_policy(custom) is custom
    with pytest.raises(ValueError, match="unknown isolation policy"):
        get_policy("docker")  # type: ignore[arg-type]


async def test_session_refuses_to_start_without_bubblewrap(tmp_path: Path) -> None:
    missing = BubblewrapPolicy(bwrap=str(tmp_path / "no-bwrap"))
    assert not missing.check().ok and "not found" in missing.check().reason()
    session = KernelSession(policy=missing)
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap.*not available.*unsandboxed"):
        await session.execute("1+1")
    assert session.kernel is None
    await session.close()


async def test_unsandboxed_runs_only_when_chosen_and_warns_every_start(caplog: pytest.LogCaptureFixture) -> None:
    token = secrets.token_hex(8)
    os.environ["QWENKIT_TEST_UNSANDBOXED_SECRET"] = token
    try:
        with caplog.at_level(logging.WARNING, logger="qwenkit.sandbox"):
            async with KernelSession(policy="unsandboxed") as s:
                r = await s.execute("import os; print(sorted(k for k in os.environ if 'SECRET' in k)); 6*7")
                assert r.result == "42" and r.stdout.strip() == "[]"
                await s.reset()
                assert (await s.execute("1+1")).result == "2"
    finally:
        del os.environ["QWENKIT_TEST_UNSANDBOXED_SECRET"]
    warnings = [r for r in caplog.records if "WITHOUT a sandbox" in r.getMessage()]
    assert len(warnings) == 2


def test_doctor_report(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    report = doctor_report()
    text = report.to_text()
    assert "kernel packages" in text and "CJK font" in text and report.to_json().startswith("{")
    assert f"cpu share: {detect_cpu_control().mode}" in text  # which CPU share mechanism is active
    if BubblewrapPolicy().check().ok:
        assert report.policy == "bubblewrap" and "namespaces" in text
    import qwenkit.sandbox.doctor as doctor

    monkeypatch.setattr(doctor, "BubblewrapPolicy", lambda: BubblewrapPolicy(bwrap=str(tmp_path / "nope")))
    broken = doctor_report()
    assert broken.policy == "unsandboxed" and not broken.ok
    assert "NOT available" in broken.to_text() and "install the Debian package `bubblewrap`" in broken.to_text()


@pytest.mark.sandbox
def test_doctor_probe_starts_an_isolated_kernel() -> None:
    report = doctor_report(probe=True)
    probe = next(c for c in report.environment if c.name == "probe")
    assert probe.ok and "'2'" in probe.detail


def test_sweep_removes_only_dirs_of_dead_owners() -> None:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    mine, orphan = KernelDirs.create(), KernelDirs.create()
    (orphan.base / "owner").write_text(str(proc.pid))
    try:
        assert KernelDirs.sweep_stale() >= 1
        assert mine.base.exists() and not orphan.base.exists()
    finally:
        mine.remove()
        orphan.remove()
