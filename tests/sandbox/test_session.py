"""KernelSession on bubblewrap kernels: state, typed results, limits, images, fonts, isolation facts."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from qwenkit.sandbox import KernelPool, KernelSession, SessionConfig
from qwenkit.sandbox.isolation import BubblewrapPolicy
from tests.sandbox.helpers import kernel_processes, kernel_python_process

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[KernelPool]:
    async with KernelPool(size=1, idle_timeout=None) as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(pool: KernelPool) -> AsyncIterator[KernelSession]:
    async with pool.session(SessionConfig(timeout=10, interrupt_grace=2)) as s:
        yield s


async def test_state_persists_and_result_is_typed(session: KernelSession) -> None:
    await session.execute("x = 20")
    r = await session.execute("import sys\nprint('out'); print('err', file=sys.stderr)\nx + 22")
    assert r.ok and r.stdout == "out\n" and r.stderr == "err\n" and r.result == "42"
    assert r.error is None and not r.timed_out and not r.truncated and r.images == []
    assert 0 < r.duration_s < 5 and r.timeout_s == 10 and r.workdir == "/workspace"


async def test_error_has_name_value_and_short_traceback(session: KernelSession) -> None:
    r = await session.execute("def f():\n    return 1/0\nf()")
    assert not r.ok and r.error is not None
    assert (r.error.name, r.error.value) == ("ZeroDivisionError", "division by zero")
    assert "return 1/0" in r.error.traceback and "\x1b[" not in r.error.traceback
    obs = r.to_observation()
    assert "error:" in obs and "ZeroDivisionError: division by zero" in obs


async def test_timeout_interrupts_and_keeps_state(session: KernelSession) -> None:
    await session.execute("kept = 'yes'")
    t0 = time.monotonic()
    r = await session.execute("import time\nprint('started')\ntime.sleep(60)", timeout=1.0)
    took = time.monotonic() - t0
    assert r.timed_out and r.interrupted and not r.restarted and r.timeout_s == 1.0
    assert 1.0 <= took < 4.0  # the per-call timeout is honoured, not the session's 10 s
    assert r.stdout == "started\n" and r.error is not None and r.error.name == "KeyboardInterrupt"
    assert "interrupted after 1 s (its time limit)" in r.to_observation()
    assert (await session.execute("kept")).result == "'yes'"


async def test_config_timeout_is_the_default(pool: KernelPool) -> None:
    async with pool.session(SessionConfig(timeout=0.5)) as s:
        r = await s.execute("while True: pass")
    assert r.timed_out and r.interrupted and r.timeout_s == 0.5


async def test_code_ignoring_sigint_gets_kernel_restarted(session: KernelSession) -> None:
    await session.execute("lost = 1")
    old_pid = session.kernel.pid if session.kernel else None
    t0 = time.monotonic()
    r = await session.execute(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", timeout=1.0
    )
    assert r.timed_out and r.restarted and not r.interrupted and r.state_lost
    assert time.monotonic() - t0 < 1.0 + 2 + 5  # timeout + grace + kill
    assert "kernel was restarted" in r.to_observation()
    after = await session.execute("1+1")
    assert after.result == "2" and session.kernel is not None and session.kernel.pid != old_pid
    gone = await session.execute("lost")
    assert gone.error is not None and gone.error.name == "NameError"


@pytest.mark.parametrize(
    ("code", "name"),
    [("import os; os._exit(3)", "os._exit"), ("import ctypes; ctypes.string_at(0)", "segfault")],
)
async def test_dead_kernel_is_reported_and_replaced(session: KernelSession, code: str, name: str) -> None:
    await session.execute("before = 1")
    r = await session.execute(code)
    assert r.kernel_died and r.state_lost and not r.ok, name
    assert "kernel died" in r.to_observation()
    if name == "os._exit":
        assert r.exit_code == 3
    after = await session.execute("1+1")
    assert after.result == "2" and after.previous_state_lost is None  # the death was already reported


async def test_kernel_killed_between_calls_is_replaced_and_said(pool: KernelPool) -> None:
    async with pool.session() as s:
        await s.execute("v = 1")
        assert s.kernel is not None and s.kernel.pid is not None
        kernel, pid = s.kernel, s.kernel.pid
        kernel_python_process(pid).kill()  # e.g. the OOM killer, while idle
        for _ in range(100):
            if not await kernel.is_alive():
                break
            await asyncio.sleep(0.05)
        r = await s.execute("1+1")
        assert r.result == "2" and r.previous_state_lost is not None
        assert "earlier variables and files are gone" in r.to_observation()


async def test_output_cap_keeps_head_and_tail(pool: KernelPool) -> None:
    async with pool.session(SessionConfig(max_output_chars=1000)) as s:
        r = await s.execute("for i in range(100000): print(f'line {i}')")
    assert r.truncated and r.dropped_chars > 100_000
    assert r.stdout.startswith("line 0\n") and r.stdout.rstrip().endswith("line 99999")
    assert len(r.stdout) < 1200 and "characters dropped" in r.stdout
    assert "output truncated" in r.to_observation()


async def test_images_saved_as_png_files(session: KernelSession) -> None:
    r = await session.execute(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3]); plt.show()\n"
        "fig, ax = plt.subplots(); ax.bar([1, 2], [3, 4]); plt.show()"
    )
    assert r.ok and len(r.images) == 2
    for path in r.images:
        p = Path(path)
        assert p.parent == session.workdir and p.read_bytes().startswith(b"\x89PNG")
        assert f"![{p.stem}]({path})" in r.to_observation()
    assert r.stdout == ""  # the figures' text/plain reprs are not repeated as text


async def test_matplotlib_uses_agg_based_inline_backend(session: KernelSession) -> None:
    r = await session.execute(
        "import matplotlib, matplotlib.pyplot as plt\n"
        "from matplotlib.backends.backend_agg import FigureCanvasAgg\n"
        "print(matplotlib.get_backend(), isinstance(plt.figure().canvas, FigureCanvasAgg)); plt.close('all')"
    )
    assert r.stdout.strip() == "module://matplotlib_inline.backend_inline True"


async def test_chinese_text_renders_without_missing_glyph_warnings(session: KernelSession) -> None:
    code = (
        "import warnings, matplotlib, matplotlib.pyplot as plt\n"
        "warnings.simplefilter('always')\n"
        "def draw():\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        fig, ax = plt.subplots(); ax.set_title('销售额（万元）'); ax.set_xlabel('月份')\n"
        "        fig.canvas.draw(); plt.close(fig)\n"
        "    return [str(x.message) for x in w if 'missing from font' in str(x.message)]\n"
    )
    await session.execute(code)
    # Control: with the default Latin-only font the same labels do warn, so the check below can fail.
    control = await session.execute("with matplotlib.rc_context({'font.family': ['DejaVu Sans']}): print(draw())")
    assert "missing from font" in control.stdout
    r = await session.execute("print(draw())\nfrom matplotlib import font_manager as fm\n"
                              "print(fm.findfont('WenQuanYi Micro Hei', fallback_to_default=False))")
    lines = r.stdout.splitlines()
    assert lines[0] == "[]", r.stdout
    assert "wqy" in lines[1].lower()
    plot = await session.execute("plt.plot([1, 2]); plt.title('中文标题'); plt.show()")
    assert len(plot.images) == 1 and "missing" not in plot.stderr


async def test_kernel_runs_as_unprivileged_host_user(session: KernelSession) -> None:
    await session.execute("1")
    assert session.kernel is not None and session.kernel.pid is not None
    kernel = kernel_python_process(session.kernel.pid)
    assert kernel.uids().real != 0 and kernel.uids().effective != 0
    if os.geteuid() == 0:
        assert kernel.uids().real == BubblewrapPolicy().sandbox_uid
    for proc in psutil.Process(session.kernel.pid).children(recursive=True):
        assert proc.uids().effective != 0
    r = await session.execute(
        "status = open('/proc/self/status').read()\n"
        "print([l for l in status.splitlines() if l.startswith(('CapEff', 'CapBnd', 'CapPrm', 'NoNewPrivs'))])"
    )
    assert "CapEff:\\t0000000000000000" in r.stdout and "CapBnd:\\t0000000000000000" in r.stdout
    assert "NoNewPrivs:\\t1" in r.stdout


async def test_ipc_transport_in_private_short_dir(session: KernelSession) -> None:
    kernel = session.kernel
    assert kernel is not None and kernel.km is not None
    assert kernel.km.transport == "ipc"
    conn_dir = kernel.dirs.conn
    assert len(str(conn_dir)) < 60 and stat.S_IMODE(conn_dir.stat().st_mode) == 0o700
    assert kernel.dirs.connection_file.parent == conn_dir and kernel.dirs.connection_file.exists()
    assert kernel.km.kernel_spec is not None and kernel.km.kernel_spec.interrupt_mode == "message"
    if os.geteuid() == 0:  # after start the kernel's uid no longer owns the dir, so cannot fill it
        assert conn_dir.stat().st_uid == 0


async def test_reset_gives_fresh_kernel(pool: KernelPool) -> None:
    async with pool.session() as s:
        await s.execute("a = 5")
        first = s.kernel.pid if s.kernel else None
        await s.reset()
        assert s.kernel is not None and s.kernel.pid != first
        r = await s.execute("a")
        assert r.error is not None and r.error.name == "NameError" and r.previous_state_lost is None


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


async def test_close_kills_every_process_and_removes_dirs(pool: KernelPool, tmp_path: Path) -> None:
    s = pool.session(workdir=tmp_path / "keep")
    r = await s.execute("import subprocess; p = subprocess.Popen(['sleep', '300']); print(p.pid)")
    assert r.ok
    kernel = s.kernel
    assert kernel is not None and kernel.pid is not None
    tree = [kernel.pid, *(p.pid for p in psutil.Process(kernel.pid).children(recursive=True))]
    assert any("sleep" in psutil.Process(pid).name() for pid in tree)
    base = str(kernel.dirs.base)
    await s.close()
    assert s.closed and _alive(tree) == [] and not kernel_processes((base,)) and not Path(base).exists()
    assert (tmp_path / "keep").is_dir()  # a workdir the caller chose is never removed
    with pytest.raises(Exception, match="closed"):
        await s.execute("1")
