"""The gateway provider against a real ``jupyter kernelgateway`` with qwenkit's bubblewrap kernelspec:
the sandbox battery's core cases, REST restart, the code_interpreter tool, and a gateway that goes away."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
import pytest_asyncio

from qwenkit.errors import KernelStartError
from qwenkit.sandbox import KernelPool, KernelSession, SessionConfig
from qwenkit.sandbox.gateway import GatewayKernel, GatewayProvider
from qwenkit.tools import ToolContext
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
from tests.sandbox.gateway.server import TOKEN, GatewayServer

pytestmark = [pytest.mark.sandbox, pytest.mark.gateway, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(gateway: GatewayServer) -> AsyncIterator[KernelPool]:
    async with KernelPool(size=1, idle_timeout=None, factory=GatewayProvider(gateway.url, TOKEN)) as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(pool: KernelPool) -> AsyncIterator[KernelSession]:
    async with pool.session(SessionConfig(timeout=20, interrupt_grace=3, max_output_chars=2000)) as s:
        yield s


def _launchers(server: GatewayServer) -> list[psutil.Process]:
    """The live kernel launchers of ``server`` (their connection files are in its private runtime dir)."""
    found = []
    for proc in psutil.process_iter():
        try:
            cmd = " ".join(proc.cmdline())
            mine = "qwenkit.sandbox.kernelspec" in cmd and str(server.root) in cmd
            if mine and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def test_installed_kernelspec_launches_through_qwenkit(gateway: GatewayServer) -> None:
    spec = json.loads((gateway.spec_dir / "kernel.json").read_text())
    assert spec["argv"][1:5] == ["-m", "qwenkit.sandbox.kernelspec", "launch", "-f"]
    assert spec["argv"][0].endswith("python") or "python" in Path(spec["argv"][0]).name
    assert spec["interrupt_mode"] == "message" and spec["metadata"]["qwenkit"]["sandbox"] == "bubblewrap"


async def test_state_kept_and_typed_result(session: KernelSession) -> None:
    await session.execute("x = 20")
    r = await session.execute("import sys\nprint('out'); print('err', file=sys.stderr)\nx + 22")
    assert r.ok and r.stdout == "out\n" and r.stderr == "err\n" and r.result == "42"
    assert r.workdir == "/workspace"
    r = await session.execute("import os\nos.getcwd()")
    assert r.result == "'/workspace'"


async def test_image_returned(session: KernelSession) -> None:
    r = await session.execute(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('gateway')\nplt.show()", timeout=60
    )
    assert r.ok and len(r.images) == 1
    png = Path(r.images[0]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert f"![fig-1]({r.images[0]})" in r.to_observation()


async def test_output_cap_applies(session: KernelSession) -> None:
    r = await session.execute("print('a' * 50_000)")
    assert r.truncated and r.dropped_chars > 40_000 and len(r.stdout) < 5000
    assert "output truncated" in r.to_observation()


async def test_timeout_interrupts_and_keeps_state(session: KernelSession) -> None:
    await session.execute("kept = 'yes'")
    t0 = time.monotonic()
    r = await session.execute("import time\nprint('started')\ntime.sleep(60)", timeout=1.5)
    assert time.monotonic() - t0 < 10
    assert r.timed_out and r.interrupted and not r.restarted
    assert r.stdout == "started\n" and r.error is not None and r.error.name == "KeyboardInterrupt"
    assert (await session.execute("kept")).result == "'yes'"


async def test_a_cell_ignoring_the_interrupt_costs_a_restart(pool: KernelPool) -> None:
    async with pool.session(SessionConfig(timeout=30, interrupt_grace=2)) as s:
        await s.execute("v = 1")
        r = await s.execute(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", timeout=1.0
        )
        assert r.timed_out and r.restarted and not r.interrupted and r.state_lost
        assert "kernel was restarted" in r.to_observation()
        r = await s.execute("v")
        assert r.error is not None and r.error.name == "NameError"


async def test_network_is_blocked(session: KernelSession, gateway: GatewayServer) -> None:
    # Not even the gateway's own port on the host's loopback: the kernel has no network namespace to reach it.
    r = await session.execute(
        f"import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('127.0.0.1', {gateway.port}))"
    )
    assert r.error is not None and r.error.name in ("ConnectionRefusedError", "OSError", "TimeoutError")
    r = await session.execute("import socket\nsocket.getaddrinfo('example.com', 80)")
    assert r.error is not None and r.error.name == "gaierror"


async def test_files_outside_the_workdir_are_unreadable(session: KernelSession, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    r = await session.execute(f"open({str(secret)!r}).read()")
    assert r.error is not None and r.error.name == "FileNotFoundError"
    assert "host secret" not in r.to_observation()
    r = await session.execute("open('/usr/qwenkit-probe', 'w')")
    assert r.error is not None and r.error.name in ("OSError", "PermissionError")
    r = await session.execute("open('note.txt', 'w').write('ok')\nopen('note.txt').read()")
    assert r.result == "'ok'"


async def test_restart_after_a_crash(pool: KernelPool) -> None:
    async with pool.session(SessionConfig(timeout=30)) as s:
        await s.execute("y = 1")
        r = await s.execute("import os\nos._exit(3)")
        assert r.kernel_died and not r.ok and r.death_reason
        assert "the kernel was lost while running this cell" in r.to_observation()
        r = await s.execute("y")
        assert r.error is not None and r.error.name == "NameError"
        assert (await s.execute("1 + 1")).result == "2"


async def test_rest_restart_clears_state_and_close_deletes(gateway: GatewayServer) -> None:
    async with KernelSession(source=GatewayProvider(gateway.url, TOKEN)) as s:
        await s.execute("z = 5")
        kernel = s.kernel
        assert isinstance(kernel, GatewayKernel)
        await kernel.restart()
        r = await s.execute("z")
        assert r.error is not None and r.error.name == "NameError" and s.kernel is kernel
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{gateway.url}/api/kernels/{kernel.kernel_id}",
                                  headers={"Authorization": f"token {TOKEN}"})
    assert answer.status_code == 404  # closing the session deleted the kernel on the gateway


async def test_code_interpreter_tool_on_a_gateway(gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWENKIT_GATEWAY_TOKEN", TOKEN)
    tool = CodeInterpreter(kernels=f"gateway:{gateway.url}", pool_size=0, timeout=20)
    try:
        ctx = ToolContext(conversation_id="conv", call_id="c1")
        await tool.run({"code": "a = 6"}, ctx)
        out = await tool.run({"code": "```python\na * 7\n```"}, ctx)
        assert not out.is_error and "42" in out.text
        out = await tool.run({"code": "import time; time.sleep(30)"}, ToolContext(
            conversation_id="conv", call_id="c2", timeout=1.0))
        assert out.is_error and "interrupted after 1 s" in out.text
    finally:
        await tool.aclose()


async def test_gateway_going_away_mid_cell_then_returning(make_gateway) -> None:  # type: ignore[no-untyped-def]
    server: GatewayServer = make_gateway()
    async with KernelSession(SessionConfig(timeout=60), source=GatewayProvider(server.url, TOKEN)) as s:
        await s.execute("w = 1")
        cell = asyncio.ensure_future(s.execute("import time\nprint('working', flush=True)\ntime.sleep(50)"))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(server.stop, signal.SIGKILL)
        r = await asyncio.wait_for(cell, 30)
        assert r.kernel_died and not r.timed_out and r.duration_s < 30
        assert r.death_reason is not None and "connection to the kernel gateway" in r.death_reason
        assert f"connection to the kernel gateway at {server.url} was lost" in r.to_observation()
        # The gateway's kernel launcher dies with it (it asked for a signal when its parent dies).
        deadline = time.monotonic() + 15
        while _launchers(server) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not _launchers(server)

        with pytest.raises(KernelStartError, match="does not answer"):
            await s.execute("1 + 1")

        await asyncio.to_thread(server.start)
        r = await s.execute("1 + 1")
        assert r.ok and r.result == "2"


async def test_a_pool_closed_while_kernels_start_leaves_none_behind(make_gateway) -> None:  # type: ignore[no-untyped-def]
    # A start cancelled while the gateway is still creating the kernel (its POST in flight) learns the
    # kernel's id anyway and deletes it: no orphan kernel on the gateway host.
    server: GatewayServer = make_gateway()
    provider = GatewayProvider(server.url, TOKEN)
    start = asyncio.ensure_future(provider.acquire_kernel())
    await asyncio.sleep(0.05)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    assert await asyncio.to_thread(server.kernels, 15.0) == []

    pool = KernelPool(size=2, idle_timeout=None, factory=provider)
    await pool.start(wait=False)
    await asyncio.sleep(0.05)
    await pool.aclose()
    assert await asyncio.to_thread(server.kernels, 15.0) == []
