"""KernelPool: warm kernels, one kernel per session and never reused, idle reaping, clean shutdown."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest

from qwenkit.sandbox import KernelPool
from tests.sandbox.helpers import descendant_kernel_processes, kernel_processes

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="module")]


async def test_pool_prewarms_and_hands_out_fast_never_reusing_kernels() -> None:
    bases: list[str] = []
    async with KernelPool(size=2, idle_timeout=None) as pool:
        assert pool.warm == 2
        t0 = time.perf_counter()
        first = await pool.session().start()
        acquire_s = time.perf_counter() - t0
        assert acquire_s < 0.25  # a warm kernel is handed over, not started (benchmark: p50 in ms)
        second = await pool.session().start()
        assert first.kernel is not None and second.kernel is not None
        assert first.kernel.pid != second.kernel.pid
        assert first.kernel.dirs.base != second.kernel.dirs.base
        bases += [str(first.kernel.dirs.base), str(second.kernel.dirs.base)]
        await first.execute("secret = 'conversation one'")
        assert (await second.execute("secret")).error is not None  # no shared state
        released = first.kernel
        await first.close()
        assert not await released.is_alive()  # killed, not returned to the pool
        third = await pool.session().start()
        assert third.kernel is not None and third.kernel is not released
        bases.append(str(third.kernel.dirs.base))
        r = await third.execute("secret")
        assert r.error is not None and r.error.name == "NameError"
        await pool.wait_full()
        assert pool.warm == 2
        bases += [str(k.dirs.base) for k in pool._warm]
    # Shutdown: no bwrap, launcher or ipykernel process is left, and no private directory.
    await asyncio.sleep(0)
    assert descendant_kernel_processes() == []
    assert kernel_processes(tuple(bases)) == []
    assert not any(Path(b).exists() for b in bases)


async def test_idle_sessions_are_reaped() -> None:
    async with KernelPool(size=0, idle_timeout=0.5, reap_interval=0.2) as pool:
        s = pool.session()
        await s.execute("x = 1")
        kernel = s.kernel
        assert kernel is not None and kernel.pid is not None
        pid = kernel.pid
        for _ in range(50):
            if s.kernel is None:
                break
            await asyncio.sleep(0.1)
        assert s.kernel is None
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        r = await s.execute("1+1")  # the session is still usable, and says why its state is gone
        assert r.result == "2" and r.previous_state_lost is not None and "without use" in r.previous_state_lost
        busy = pool.session()
        task = asyncio.ensure_future(busy.execute("import time; time.sleep(2); 'done'"))
        for _ in range(600):  # a cold kernel start: seconds on a loaded machine
            if busy.kernel is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # past idle_timeout + reap_interval, while the cell still runs
        assert busy.kernel is not None and not task.done()  # a session running code is never reaped
        assert (await task).result == "'done'"
    assert descendant_kernel_processes() == []


async def test_pool_closes_sessions_it_made() -> None:
    pool = await KernelPool(size=1, idle_timeout=None).start()
    s = pool.session()
    await s.execute("1")
    await pool.aclose()
    assert s.closed and descendant_kernel_processes() == []
    with pytest.raises(RuntimeError):
        pool.session()
