"""`KernelPool`: pre-warmed isolated kernels, so a new session starts without waiting for a kernel.

A kernel goes to exactly one session and is killed when that session is done with it (closed,
reset, restarted or reaped); it is never handed to another conversation. Sessions made by the pool
that stay idle longer than ``idle_timeout`` lose their kernel (the next call starts a fresh one and
says so). `aclose` kills every kernel the pool and its sessions hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from pathlib import Path
from types import TracebackType

from qwenkit.sandbox.images import OutputsBudget
from qwenkit.sandbox.isolation import IsolationPolicy, PolicyName
from qwenkit.sandbox.kernel import KernelFactory
from qwenkit.sandbox.limits import ResourceLimits
from qwenkit.sandbox.provider import Kernel, KernelProvider
from qwenkit.sandbox.session import KernelSession, SessionConfig

log = logging.getLogger("qwenkit.sandbox")


class KernelPool:
    """Keeps ``size`` started kernels ready and hands each out once.

    Example::

        async with KernelPool(size=2) as pool:
            async with pool.session() as s:
                print((await s.execute("1+1")).result)

    Args:
        size: Warm kernels kept ready (0: start each kernel on demand).
        policy: Isolation policy of the kernels (default: bubblewrap).
        limits: Resource limits of the kernels.
        config: Default per-cell limits of the sessions made by `session`.
        idle_timeout: Seconds a session may sit idle before its kernel is killed (``None``: never).
        reap_interval: Seconds between checks for idle sessions.
        factory: The kernel provider: a ready-made local `KernelFactory` or a `GatewayProvider` (then
            ``policy`` and ``limits`` are ignored). Default: local kernels under ``policy``/``limits``.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        policy: IsolationPolicy | PolicyName | None = None,
        limits: ResourceLimits | None = None,
        config: SessionConfig | None = None,
        idle_timeout: float | None = 600.0,
        reap_interval: float = 30.0,
        factory: KernelProvider | None = None,
    ) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self.factory: KernelProvider = factory or KernelFactory(policy, limits)
        self.config = config or SessionConfig()
        self.idle_timeout = idle_timeout
        self.reap_interval = reap_interval
        self._warm: deque[Kernel] = deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._sessions: weakref.WeakSet[KernelSession] = weakref.WeakSet()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._last_error: BaseException | None = None

    async def __aenter__(self) -> KernelPool:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def warm(self) -> int:
        """Kernels ready to be handed out now."""
        return len(self._warm)

    @property
    def last_error(self) -> BaseException | None:
        """Why the last kernel start failed (``None`` once one succeeded again)."""
        return self._last_error

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self, *, wait: bool = True) -> KernelPool:
        """Start filling the pool and the idle reaper.

        Args:
            wait: Wait until the pool is full (else return at once; sessions wait for their kernel).

        Raises:
            SandboxUnavailable: The policy cannot run here (local kernels).
            ConfigError: The gateway cannot be used (gateway kernels).
            KernelStartError: With ``wait``, no kernel could be started.
        """
        await self.factory.check()
        self._refill()
        if self.idle_timeout is not None and self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap_forever())
        if wait:
            await self.wait_full()
            if self._last_error is not None and not self._warm and self.size:
                raise self._last_error
        return self

    async def wait_full(self) -> None:
        """Wait until no kernel is being started (the pool is full, unless a start failed)."""
        while self._starting:
            await asyncio.gather(*list(self._starting), return_exceptions=True)

    # ----------------------------------------------------------------------------- kernel source
    def _refill(self) -> None:
        if self._closed:
            return
        while len(self._warm) + len(self._starting) < self.size:
            task = asyncio.ensure_future(self._start_one())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_one(self) -> None:
        try:
            kernel = await self.factory.acquire_kernel()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # reported by start(); acquire_kernel falls back to a cold start
            self._last_error = err
            log.warning("could not pre-start a sandbox kernel: %s", err)
            return
        if self._closed:
            await kernel.close()
        else:
            self._last_error = None
            self._warm.append(kernel)

    async def acquire_kernel(self) -> Kernel:
        """Hand out a warm kernel (or, if none is ready, the next one to finish starting); refill."""
        if self._closed:
            raise RuntimeError("the kernel pool is closed")
        while True:
            while self._warm:
                kernel = self._warm.popleft()
                if await kernel.is_alive():
                    self._refill()
                    return kernel
                await kernel.close()  # died while waiting (e.g. killed from outside)
            self._refill()
            if not self._starting:
                return await self.factory.acquire_kernel()
            await asyncio.wait(list(self._starting), return_when=asyncio.FIRST_COMPLETED)
            if not self._warm and self._last_error is not None:
                # Starts are failing: start one here, so the caller gets the real error (or a kernel).
                return await self.factory.acquire_kernel()

    async def release_kernel(self, kernel: Kernel) -> None:
        """Kill a kernel a session is done with; kernels are never reused."""
        await kernel.close()

    # ---------------------------------------------------------------------------------- sessions
    def session(
        self, config: SessionConfig | None = None, *, workdir: str | Path | None = None,
        outputs_budget: OutputsBudget | None = None,
    ) -> KernelSession:
        """Make a new session that takes its kernels from this pool (and is reaped when idle).

        Args:
            config: Per-cell limits (default: the pool's).
            workdir: Host directory for its images (see `KernelSession`).
            outputs_budget: Size budget of the folder ``workdir`` is in (see `KernelSession`).
        """
        if self._closed:
            raise RuntimeError("the kernel pool is closed")
        session = KernelSession(config or self.config, source=self, workdir=workdir, outputs_budget=outputs_budget)
        self._sessions.add(session)
        return session

    async def reap_idle(self) -> int:
        """Kill the kernels of sessions idle longer than ``idle_timeout``; return how many."""
        if self.idle_timeout is None:
            return 0
        now = time.monotonic()
        reaped = 0
        for session in list(self._sessions):
            idle = now - session.last_used
            if session.closed or session.kernel is None or idle < self.idle_timeout:
                continue
            reason = f"the kernel was stopped after {idle:.0f} s without use"
            if await session.release_idle_kernel(reason):
                reaped += 1
        return reaped

    async def _reap_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.reap_interval)
            try:
                await self.reap_idle()
            except Exception as err:  # a reaper must not die of one bad session
                log.warning("reaping idle sandbox sessions failed: %s", err)

    # ------------------------------------------------------------------------------------- close
    async def aclose(self) -> None:
        """Kill every kernel: warm ones, ones starting, and those of sessions made by the pool."""
        self._closed = True
        tasks = [t for t in (self._reaper, *self._starting) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._reaper = None
        await asyncio.gather(*(s.close() for s in list(self._sessions)), return_exceptions=True)
        warm, self._warm = list(self._warm), deque()
        await asyncio.gather(*(k.close() for k in warm), return_exceptions=True)

    def kill_now(self) -> None:
        """Kill every kernel at once, without an event loop: for finalisers and other threads.

        Warm kernels and those of the pool's sessions get SIGKILL (`Kernel.kill_now`); kernels
        still starting are killed by their start task when it sees the pool closed (or, if the loop
        never runs again, by ``--die-with-parent`` when this process exits). Idempotent.
        """
        self._closed = True
        for session in list(self._sessions):
            session.kill_now()
        warm, self._warm = list(self._warm), deque()
        for kernel in warm:
            kernel.kill_now()
