"""A hostile kernel through the real sandbox: crafted messages, image floods, unformattable exceptions,
background processes, and killing kernels without an event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from qwenkit.sandbox import KernelFactory, KernelPool, KernelSession, SessionConfig
from qwenkit.sandbox.cpu import CpuControl, detect_cpu_control
from qwenkit.sandbox.images import OutputsBudget
from qwenkit.sandbox.limits import ResourceLimits
from tests.sandbox.helpers import descendant_kernel_processes

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="module")]

# Code that sends a raw message on the kernel's own iopub socket, as the cell's output.
SEND = (
    "k = get_ipython().kernel\n"
    "def send(msg_type, content):\n"
    "    k.session.send(k.iopub_socket, msg_type, content, parent=k.get_parent('shell'))\n"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KernelSession]:
    root = tmp_path_factory.mktemp("outputs")
    budget = OutputsBudget(root, max_bytes=2_500_000)
    config = SessionConfig(timeout=20, max_image_bytes=1_000_000, max_cell_image_bytes=3_000_000, max_images=4)
    async with KernelSession(config, workdir=root / "conv", outputs_budget=budget) as s:
        await s.execute(SEND)
        yield s


async def test_crafted_error_with_a_30_mb_value_is_capped(session: KernelSession) -> None:
    r = await session.execute(
        "send('error', {'ename': 'E' * 1_000_000, 'evalue': 'v' * 30_000_000, 'traceback': []})"
    )
    assert not r.ok and r.error is not None
    assert len(r.error.name) < 300 and len(r.error.value) < 2_200
    assert len(r.to_observation()) < 10_000


async def test_crafted_streams_displays_and_tracebacks_are_capped(session: KernelSession) -> None:
    r = await session.execute(
        "send('stream', {'name': 'stdout', 'text': 's' * 20_000_000})\n"
        "send('display_data', {'data': {'text/plain': 'p' * 20_000_000, 'text/html': 'h' * 20_000_000},"
        " 'metadata': {}})\n"
        "send('error', {'ename': 'X', 'evalue': 'y', 'traceback': ['z' * 10_000_000] * 3})\n"
    )
    obs = r.to_observation()
    assert not r.ok and r.truncated and len(r.stdout) < 25_000 and len(obs) < 30_000
    assert r.error is not None and len(r.error.traceback) <= 20_100


async def test_malformed_messages_are_skipped(session: KernelSession) -> None:
    r = await session.execute(
        "def raw(msg_type, content, parent=None, mangle=None):\n"
        "    msg = k.session.msg(msg_type, content, parent=k.get_parent('shell'))\n"
        "    frames = k.session.serialize(msg, ident=b'x')\n"
        "    i = frames.index(b'<IDS|MSG>')\n"
        "    if parent is not None: frames[i + 3] = parent\n"
        "    if mangle is not None: frames[i + 5] = mangle\n"
        "    frames[i + 1] = k.session.sign(frames[i + 2:i + 6])\n"
        "    k.iopub_socket.send_multipart(frames)\n"
        "raw('stream', {'name': 'stdout', 'text': 'orphan'}, parent=b'[]')\n"
        "raw('stream', {}, mangle=b'{not json')\n"
        "raw('status', {}, mangle=b'\"idle, but a string\"')\n"
        "raw('stream', {}, mangle=b'[1, 2]')\n"
        "print('still here')"
    )
    assert r.ok and r.stdout == "still here\n"
    assert (await session.execute("40 + 2")).result == "42"


async def test_lone_surrogates_from_the_kernel_are_replaced(session: KernelSession) -> None:
    # ensure_ascii writes the surrogate as a \\ud800 escape, which a JSON reader turns back into one.
    r = await session.execute(
        "import json\nsaved_pack = k.session.pack\n"
        "k.session.pack = lambda obj: json.dumps(obj, ensure_ascii=True, default=str).encode()\n"
        "try:\n    send('stream', {'name': 'stdout', 'text': 'a\\ud800b'})\n"
        "finally:\n    k.session.pack = saved_pack"
    )
    assert r.stdout == "a\ufffdb" and r.replaced_chars
    r.to_observation().encode("utf-8")
    r.model_dump_json()  # a transcript write would fail on a lone surrogate


async def test_png_headed_junk_is_not_written_and_images_are_capped(session: KernelSession) -> None:
    r = await session.execute(
        "import base64\n"
        "junk = base64.b64encode(b'\\x89PNG\\r\\n\\x1a\\n' + b'\\0' * 900_000).decode()\n"
        "huge = base64.b64encode(b'\\x89PNG\\r\\n\\x1a\\n' + b'\\0' * 30_000_000).decode()\n"
        "for _ in range(20): send('display_data', {'data': {'image/png': junk}, 'metadata': {}})\n"
        "send('display_data', {'data': {'image/png': huge}, 'metadata': {}})\n"
    )
    assert r.images == [] and r.invalid_images == 20 and r.dropped_images == 1
    assert list(session.workdir.iterdir()) == []  # nothing was written to the host
    real = await session.execute(
        "import matplotlib.pyplot as plt\n"
        "for i in range(6):\n    plt.figure(); plt.plot([1, i]); plt.show()"
    )
    assert len(real.images) == 4 and real.dropped_images == 2
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in real.images)


async def test_outputs_folder_stays_within_its_budget(session: KernelSession) -> None:
    budget = session.outputs_budget
    assert budget is not None
    # Random pixels do not compress: each figure is several hundred KB, so old ones must go.
    code = (
        "import numpy as np, matplotlib.pyplot as plt\n"
        "for i in range(3):\n"
        "    plt.figure(figsize=(6, 6)); plt.imshow(np.random.rand(400, 400, 3)); plt.show()"
    )
    results = [await session.execute(code) for _ in range(4)]
    assert all(r.ok and len(r.images) == 3 for r in results)
    sizes = [Path(p).stat().st_size for p in results[-1].images]
    assert sum(sizes) * 4 > budget.max_bytes  # the twelve figures would not all fit
    total = sum(p.stat().st_size for p in budget.root.rglob("*") if p.is_file())
    assert total <= budget.max_bytes
    assert all(Path(p).exists() for p in results[-1].images)  # the newest are kept
    assert not Path(results[0].images[0]).exists()  # the oldest went first


async def test_an_exception_ipython_cannot_format_fails_the_cell(session: KernelSession) -> None:
    r = await session.execute(
        "class M(type):\n"
        "    def __getattribute__(cls, name): raise RuntimeError('unprintable')\n"
        "class E(Exception, metaclass=M): pass\n"
        "raise E()"
    )
    assert not r.ok and r.error is not None and r.error.value == "unprintable"
    hidden = await session.execute(
        "ip = get_ipython(); saved = ip.showtraceback\n"
        "ip.showtraceback = lambda *a, **k: None\n"
        "try:\n    raise ValueError('no error message is sent')\nfinally:\n    pass"
    )
    assert not hidden.ok and hidden.error is not None and hidden.error.name == "ValueError"
    await session.execute("ip.showtraceback = saved")


BUSY = "import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\np.pid"


@pytest.mark.skipif(detect_cpu_control().mode == "reaper", reason="no writable cgroup with the cpu controller")
async def test_background_processes_share_the_kernels_cgroup_quota() -> None:
    limits = ResourceLimits(cpu_cores=0.2)
    async with KernelSession(source=KernelFactory(limits=limits, matplotlib=False)) as s:
        r = await s.execute(BUSY)
        kernel = s.kernel
        assert kernel is not None and kernel.cpu.cgroup is not None and r.stopped_processes == 0
        procs = {int(p) for p in (kernel.cpu.cgroup / "cgroup.procs").read_text().split()}
        strays = kernel.cpu.strays()
        assert strays and {p.pid for p in strays} <= procs  # the busy loop is inside the kernel's cgroup
        busy = strays[0]
        await asyncio.sleep(1.0)
        # Bounded by the quota: well under the full core it would take unbounded (0.2 core allowed).
        assert busy.cpu_times().user + busy.cpu_times().system < 0.6
        cgroup = kernel.cpu.cgroup
    assert not cgroup.exists() and not busy.is_running()


async def test_without_a_cgroup_background_processes_are_reaped_after_each_cell() -> None:
    reaper = CpuControl("reaper", None, "forced for the test")
    async with KernelSession(source=KernelFactory(matplotlib=False, cpu_control=reaper)) as s:
        r = await s.execute(BUSY)
        assert r.ok and r.stopped_processes == 1 and "1 background process(es)" in r.to_observation()
        pid = int(r.result or 0)
        kernel = s.kernel
        assert kernel is not None
        deadline = time.monotonic() + 5  # SIGKILL was sent; the process takes a moment to be gone
        while kernel.cpu.strays() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert kernel.cpu.strays() == []
        assert (await s.execute("p.wait()")).result == "-9"
        assert pid and (await s.execute("1+1")).stopped_processes == 0


async def test_forked_children_get_a_cpu_time_limit_and_the_kernel_none(session: KernelSession) -> None:
    r = await session.execute(
        "import os, resource\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    os._exit(resource.getrlimit(resource.RLIMIT_CPU)[0] % 256)\n"
        "(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), resource.getrlimit(resource.RLIMIT_CPU)[0])"
    )
    assert r.result == f"({ResourceLimits().child_cpu_seconds % 256}, -1)"


async def test_kill_now_closes_sessions_and_pools_without_awaiting() -> None:
    others = {p.pid for p in descendant_kernel_processes()}  # the module's session
    pool = KernelPool(size=1, idle_timeout=None)
    await pool.start()
    session = pool.session()
    await session.execute("x = 1")
    await pool.wait_full()  # the kernel that replaced the one handed out is warm too
    assert pool.warm == 1
    kernel = session.kernel
    assert kernel is not None and kernel.pid is not None
    tree = [psutil.Process(kernel.pid), *psutil.Process(kernel.pid).children(recursive=True)]
    base = kernel.dirs.base
    pool.kill_now()  # synchronous: what a finaliser can call
    assert session.closed and pool.closed and pool.warm == 0 and not base.exists()
    deadline = time.monotonic() + 5
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    await pool.aclose()  # still safe afterwards
    assert {p.pid for p in descendant_kernel_processes()} <= others  # the warm kernel died too
