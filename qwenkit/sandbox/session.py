"""`KernelSession`: a stateful, notebook-like code session over one sandboxed kernel at a time.

State (variables, imports, files in the working directory) persists between `execute` calls. When
a cell runs past its timeout the kernel is interrupted; if it is not idle within a few seconds it
is killed. A kernel that was killed or died is replaced on the next call, and that call's result
says that earlier state is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.errors import SessionClosed
from qwenkit.sandbox.images import OutputsBudget
from qwenkit.sandbox.isolation import IsolationPolicy, PolicyName
from qwenkit.sandbox.kernel import CellEnd, KernelFactory
from qwenkit.sandbox.limits import MiB, ResourceLimits
from qwenkit.sandbox.output import CellCollector, OutputCaps
from qwenkit.sandbox.provider import Kernel
from qwenkit.sandbox.result import ExecutionResult


class SessionConfig(BaseModel):
    """Limits the client enforces on each cell.

    Attributes:
        timeout: Default wall-clock seconds per cell.
        interrupt_grace: Seconds a timed-out cell has to stop after the interrupt before the kernel is
            killed and replaced.
        max_output_chars: Characters kept per stream (stdout, stderr, last value); beyond that the
            head and the tail are kept and the rest counted as dropped.
        max_images: Images saved per cell.
        max_image_bytes: Bytes of one saved image; bigger ones are not saved.
        max_cell_image_bytes: Bytes of all images saved for one cell.
        max_image_pixels: Pixels (width x height) of one saved image.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: float = Field(default=30.0, gt=0)
    interrupt_grace: float = Field(default=3.0, gt=0)
    max_output_chars: int = Field(default=10_000, ge=0)
    max_images: int = Field(default=16, ge=0)
    max_image_bytes: int = Field(default=4 * MiB, ge=1024)
    max_cell_image_bytes: int = Field(default=16 * MiB, ge=1024)
    max_image_pixels: int = Field(default=25_000_000, ge=1)

    def output_caps(self) -> OutputCaps:
        """The per-cell caps the output collector applies."""
        return OutputCaps(
            max_output_chars=self.max_output_chars, max_images=self.max_images,
            max_image_bytes=self.max_image_bytes, max_cell_image_bytes=self.max_cell_image_bytes,
            max_image_pixels=self.max_image_pixels,
        )


class KernelSource(Protocol):
    """Where a session gets fresh kernels: a `KernelProvider` (cold start: local `KernelFactory` or a
    `GatewayProvider`) or a `KernelPool` (warm)."""

    async def acquire_kernel(self) -> Kernel: ...

    async def release_kernel(self, kernel: Kernel) -> None: ...


class KernelSession:
    """A notebook-like session: run code, keep state, get typed results.

    Use it as an async context manager, or call `start` and `close` yourself::

        async with KernelSession() as s:
            await s.execute("x = 21")
            print((await s.execute("x * 2")).result)   # 42

    Args:
        config: Per-cell limits (timeout, output cap).
        policy: Isolation policy when no ``source`` is given: ``"bubblewrap"`` (default) or
            ``"unsandboxed"`` (explicit only; logs a warning on every kernel start).
        limits: Resource limits when no ``source`` is given.
        source: Where kernels come from: a provider (`KernelFactory`, `GatewayProvider`), or a
            `KernelPool` for warm starts. Default: local kernels under ``policy`` and ``limits``.
        workdir: Host directory for the PNG files of image outputs. Default: a temporary directory
            removed by `close`; a directory you pass is created if needed and never removed.
        outputs_budget: Size budget of the folder ``workdir`` lives in: before an image is saved, the
            oldest files under its root are deleted until it fits (``None``: no budget).

    Raises:
        SandboxUnavailable: (from `start`/`execute`) the policy cannot run on this machine.
    """

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        policy: IsolationPolicy | PolicyName | None = None,
        limits: ResourceLimits | None = None,
        source: KernelSource | None = None,
        workdir: str | Path | None = None,
        outputs_budget: OutputsBudget | None = None,
    ) -> None:
        self.config = config or SessionConfig()
        self.outputs_budget = outputs_budget
        self.source: KernelSource = source or KernelFactory(policy, limits)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="qwenkit-session-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._kernel: Kernel | None = None
        self._lock = asyncio.Lock()
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False
        self._figures = 0
        self._lost: str | None = None  # why earlier state is gone, not yet told to the caller
        self._last_used = time.monotonic()
        self._busy = False

    # ------------------------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> KernelSession:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> KernelSession:
        """Get a kernel now instead of on the first `execute` (a no-op when one is running)."""
        async with self._lock:
            self._check_open()
            await self._ensure_kernel()
        return self

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def busy(self) -> bool:
        """Whether a cell is running now."""
        return self._busy

    @property
    def last_used(self) -> float:
        """``time.monotonic()`` when the last cell ended (or the session was made)."""
        return self._last_used

    @property
    def kernel(self) -> Kernel | None:
        """The current kernel, if any (replaced after a death or restart)."""
        return self._kernel

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosed("this code session was closed; start a new one")

    async def close(self) -> None:
        """Kill the kernel and every process it started; remove the temporary workdir. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(BaseException):
                await self._recovery
        await self._drop_kernel()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill_now(self) -> None:
        """Close the session synchronously, without an event loop: for finalisers and other threads.

        Kills the kernel with SIGKILL (see `Kernel.kill_now`) and removes the temporary
        workdir. Idempotent; `close` afterwards does nothing.
        """
        if self._closed:
            return
        self._closed = True
        kernel, self._kernel = self._kernel, None
        if kernel is not None:
            kernel.kill_now()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def reset(self) -> None:
        """Throw away all state: the kernel is replaced by a fresh one (a full restart, not ``%reset``)."""
        async with self._lock:
            self._check_open()
            await self._finish_recovery()
            await self._drop_kernel()
            self._lost = None  # asked for, so nothing to report
            await self._ensure_kernel()

    async def release_idle_kernel(self, reason: str) -> bool:
        """Kill the kernel if the session is not running code; the next call starts a fresh one.

        Used by `KernelPool` to reap idle sessions: the session stays usable, and the next result
        says why its earlier state is gone.

        Args:
            reason: Said to the caller on the next call ("the kernel was stopped after 600 s idle").

        Returns:
            Whether a kernel was released.
        """
        if self._busy or self._lock.locked() or self._kernel is None:
            return False
        async with self._lock:
            if self._kernel is None:
                return False
            await self._drop_kernel()
            self._lost = reason
            return True

    # --------------------------------------------------------------------------------- kernels
    async def _drop_kernel(self) -> None:
        kernel, self._kernel = self._kernel, None
        if kernel is not None:
            await self.source.release_kernel(kernel)

    async def _ensure_kernel(self) -> Kernel:
        kernel = self._kernel
        if kernel is not None and not kernel.closed and await kernel.is_alive():
            return kernel
        if kernel is not None:
            code = kernel.exit_code
            self._lost = self._lost or (
                f"the previous kernel had exited (exit code {code})" if code is not None
                else f"the previous kernel had stopped ({kernel.death_reason})" if kernel.death_reason
                else "the previous kernel had stopped"
            )
            await self._drop_kernel()
        kernel = await self.source.acquire_kernel()
        if self._closed:  # closed while the kernel was starting: do not leak it
            await self.source.release_kernel(kernel)
            raise SessionClosed("this code session was closed; start a new one")
        self._kernel = kernel
        return kernel

    async def _finish_recovery(self) -> None:
        task, self._recovery = self._recovery, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    async def _recover(self, kernel: Kernel, msg_id: str) -> None:
        """After a caller gave up on a cell: interrupt it, and kill the kernel if it does not stop."""
        await kernel.interrupt()
        end = await kernel.wait(msg_id, time.monotonic() + self.config.interrupt_grace, lambda *_: None)
        if end is not CellEnd.IDLE and self._kernel is kernel:
            self._lost = (
                "the previous cell was cancelled by its caller and did not stop when interrupted, so its "
                "kernel was restarted"
            )
            await self._drop_kernel()

    # --------------------------------------------------------------------------------- running
    def _save_image(self, png: bytes) -> str | None:
        if self.outputs_budget is not None and not self.outputs_budget.make_room(len(png)):
            return None
        self._figures += 1
        path = self.workdir / f"fig-{self._figures}.png"
        self.workdir.mkdir(parents=True, exist_ok=True)  # an outputs cleanup may have removed it
        path.write_bytes(png)
        return str(path)

    async def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Run ``code`` in the session's kernel.

        Args:
            code: Python source (IPython syntax, so ``!cmd`` and ``%magic`` work too).
            timeout: Wall-clock seconds for this cell (default: ``config.timeout``).

        Returns:
            The typed result. Errors in the code, timeouts and a dying kernel are reported in it,
            not raised.

        Raises:
            SessionClosed: The session was closed.
            SandboxUnavailable: No kernel could be started under the policy.
        """
        limit = self.config.timeout if timeout is None else timeout
        if limit <= 0:
            raise ValueError("timeout must be positive")
        async with self._lock:
            self._check_open()
            self._busy = True
            try:
                return await self._execute(code, limit)
            finally:
                self._busy = False
                self._last_used = time.monotonic()

    async def _execute(self, code: str, limit: float) -> ExecutionResult:
        await self._finish_recovery()
        kernel = await self._ensure_kernel()
        lost, self._lost = self._lost, None
        collector = CellCollector(self.config.output_caps(), self._save_image)
        start = time.monotonic()
        msg_id = kernel.send(code)
        timed_out = interrupted = restarted = died = False
        try:
            end = await kernel.wait(msg_id, start + limit, collector.feed)
            if end is CellEnd.TIMEOUT:
                timed_out = True
                await kernel.interrupt()
                end = await kernel.wait(msg_id, time.monotonic() + self.config.interrupt_grace, collector.feed)
                interrupted = end is CellEnd.IDLE
                restarted = end is CellEnd.TIMEOUT
            died = end is CellEnd.DIED
        except asyncio.CancelledError:
            # The caller gave up (e.g. a tool-call timeout): stop the cell in the background so the
            # next call does not find the kernel still busy with it.
            self._recovery = asyncio.ensure_future(self._recover(kernel, msg_id))
            raise
        duration = time.monotonic() - start
        exit_code = kernel.exit_code if died else None
        death_reason = kernel.death_reason if died else None
        stopped = 0
        if died or restarted:
            await self._drop_kernel()
        elif kernel.reaps_strays:
            stopped = await asyncio.to_thread(kernel.reap_strays)
        return ExecutionResult(
            **collector.fields(), previous_state_lost=lost, duration_s=duration, timeout_s=limit,
            timed_out=timed_out, interrupted=interrupted, restarted=restarted, kernel_died=died,
            exit_code=exit_code, death_reason=death_reason, workdir=kernel.workdir, stopped_processes=stopped,
        )
