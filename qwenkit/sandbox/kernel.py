"""One isolated ipykernel process: start it under a policy, run cells on it, interrupt it, kill it.

This is the low-level piece; `KernelSession` adds timeouts with interrupt-then-restart, result
building and replacement of dead kernels. A `SandboxKernel` is never given to a second session.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import logging
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

from qwenkit.errors import KernelStartError
from qwenkit.sandbox.isolation import IsolationPolicy, PolicyName, get_policy
from qwenkit.sandbox.isolation.base import KernelDirs, LaunchPlan, LaunchRequest
from qwenkit.sandbox.limits import MiB, ResourceLimits

log = logging.getLogger("qwenkit.sandbox")

MAX_MESSAGE_BYTES = 64 * MiB
"""Largest message accepted from a kernel; a bigger one makes ZeroMQ drop the connection, so a
hostile kernel cannot make this process allocate without bound."""

KERNEL_ARGS = (
    "--HistoryManager.enabled=False",  # no sqlite file, nothing written to $HOME
    "--InteractiveShell.colors=NoColor",
    "--IPKernelApp.quiet=True",
)
"""ipykernel options of every qwenkit kernel."""
_LIVE_DIRS: set[KernelDirs] = set()


@atexit.register
def _remove_leftover_dirs() -> None:
    # Kernels die with this process (--die-with-parent); their private dirs should not outlive it.
    for dirs in list(_LIVE_DIRS):
        dirs.remove()


class _CappedSocketClient(AsyncKernelClient):
    """A client whose sockets refuse oversized messages and reconnect quickly."""

    def _create_connected_socket(self, channel: str, identity: bytes | None = None) -> zmq.Socket:
        from jupyter_client.connect import channel_socket_types

        sock = self.context.socket(channel_socket_types[channel])
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        # The kernel binds its sockets a moment after launch; retry the connection every 10 ms.
        sock.setsockopt(zmq.RECONNECT_IVL, 10)
        if identity:
            sock.identity = identity
        sock.connect(self._make_url(channel))
        return sock


class CellEnd(Enum):
    """How waiting for a cell ended."""

    IDLE = "idle"
    TIMEOUT = "timeout"
    DIED = "died"


class _OutputTail:
    """Keeps the last few KiB the kernel process wrote to its own stdout/stderr (startup errors)."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, limit: int = 8192) -> None:
        self.fd, self.loop, self.limit = fd, loop, limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.stop()
            return
        self.chunks.append(data)
        self.size += len(data)
        while self.size > self.limit and len(self.chunks) > 1:
            self.size -= len(self.chunks.popleft())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.fd)

    def text(self) -> str:
        return b"".join(self.chunks)[-self.limit :].decode(errors="replace")


class SandboxKernel:
    """A running kernel under an isolation policy, with its client.

    Create with `SandboxKernel.start`; call `close` when done (always, even after it died).

    Attributes:
        policy: The policy it runs under.
        workdir: Its working directory as code inside sees it.
        started_at: ``time.monotonic()`` when it answered its first request.
        startup_s: Seconds from launch to its first answer.
    """

    def __init__(self, policy: IsolationPolicy, dirs: KernelDirs, plan: LaunchPlan) -> None:
        self.policy = policy
        self.dirs = dirs
        self.plan = plan
        self.workdir = plan.workdir
        self.started_at = 0.0
        self.startup_s = 0.0
        self.km: AsyncKernelManager | None = None
        self.kc: AsyncKernelClient | None = None
        self._tail: _OutputTail | None = None
        self._closed = False
        self._exit_code: int | None = None

    # ------------------------------------------------------------------------------------ start
    @classmethod
    async def start(
        cls,
        policy: IsolationPolicy,
        limits: ResourceLimits,
        *,
        write_cap: int = 1_000_000,
        mpl_seed: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> SandboxKernel:
        """Launch a kernel under ``policy`` and wait until it answers.

        Args:
            policy: Isolation policy (its availability is checked first).
            limits: Resource limits for the kernel.
            write_cap: Longest single stdout/stderr write the kernel sends whole.
            mpl_seed: Directory from `qwenkit.sandbox.fonts.matplotlib_seed`, or ``None``.
            startup_timeout: Seconds to wait for the first answer.

        Raises:
            SandboxUnavailable: The policy cannot run here.
            KernelStartError: The kernel did not answer in time (its last output is in the message).
        """
        policy.ensure_available()
        dirs = KernelDirs.create()
        _LIVE_DIRS.add(dirs)
        request = LaunchRequest(
            dirs=dirs, limits=limits, write_cap=write_cap, mpl_seed=mpl_seed,
            kernel_args=("-f", str(dirs.connection_file), *KERNEL_ARGS),
        )
        try:
            plan = policy.plan(request)
        except BaseException:
            dirs.remove()
            _LIVE_DIRS.discard(dirs)
            raise
        kernel = cls(policy, dirs, plan)
        try:
            await kernel._launch(startup_timeout)
        except BaseException:
            await kernel.close()
            raise
        return kernel

    async def _launch(self, startup_timeout: float) -> None:
        km = AsyncKernelManager(
            transport="ipc", ip=self.dirs.ipc_prefix, connection_file=str(self.dirs.connection_file),
            context=_shared_context(),
        )
        # The whole command line comes from the policy; interrupts go over the control channel,
        # because a SIGINT to the launched process would reach bubblewrap, not the kernel.
        km._kernel_spec = KernelSpec(
            argv=self.plan.argv, display_name="qwenkit sandbox", language="python",
            interrupt_mode="message", env={}, metadata={},
        )
        km.client_factory = _CappedSocketClient
        self.km = km
        km.write_connection_file()
        self.policy.prepare(self.dirs)
        self.policy.on_start()
        t0 = time.perf_counter()
        await km.start_kernel(
            env=dict(self.plan.env), cwd=self.plan.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        process = km.provisioner.process if km.provisioner is not None else None  # type: ignore[attr-defined]
        if process is not None and process.stdout is not None:
            self._tail = _OutputTail(process.stdout.fileno(), asyncio.get_running_loop())
        kc = km.client()
        kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        self.kc = kc
        await self._wait_ready(startup_timeout)
        self.startup_s = time.perf_counter() - t0
        self.started_at = time.monotonic()
        self.policy.lock_down(self.plan)

    async def _wait_ready(self, timeout: float) -> None:
        """Send ``kernel_info`` until it is answered *and* iopub delivers (ZeroMQ's slow joiner)."""
        assert self.kc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = self.kc.kernel_info()
            resend = min(time.monotonic() + 1.0, deadline)
            while time.monotonic() < resend:
                if not await self.is_alive():
                    raise KernelStartError(f"the kernel exited while starting: {self.last_output()}")
                try:
                    reply = await self.kc.get_shell_msg(timeout=0.05)
                except Empty:
                    continue
                if reply["parent_header"].get("msg_id") != msg_id:
                    continue
                # The reply came; now make sure iopub is subscribed: the request's idle status must arrive.
                if await self._drain_until_idle(msg_id, 0.5):
                    return
                break
        raise KernelStartError(f"the kernel did not answer within {timeout:g} s: {self.last_output()}")

    async def _drain_until_idle(self, msg_id: str, timeout: float) -> bool:
        assert self.kc is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.kc.get_iopub_msg(timeout=left)
            except Empty:
                return False
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
            ):
                return True
        return False

    # -------------------------------------------------------------------------------- running
    def send(self, code: str) -> str:
        """Send ``code`` for execution and return the request's message id."""
        assert self.kc is not None
        return self.kc.execute(code, store_history=True, allow_stdin=False)

    async def wait(
        self, msg_id: str, deadline: float, feed: Callable[[str, dict[str, Any]], None]
    ) -> CellEnd:
        """Pass the request's iopub messages to ``feed`` until it is idle, time runs out, or the kernel dies.

        Args:
            msg_id: Id returned by `send`.
            deadline: ``time.monotonic()`` value to give up at.
            feed: Called with ``(msg_type, content)`` for every output message of the request.
        """
        kc = self.kc
        assert kc is not None
        channel = kc.iopub_channel
        assert isinstance(channel, AsyncZMQSocketChannel)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return CellEnd.TIMEOUT
            try:
                # Wake up now and then to notice a kernel that died without a word (os._exit, SIGKILL).
                msg = await channel.get_msg(timeout=min(left, 0.25))
            except Empty:
                if not await self.is_alive():
                    return CellEnd.DIED
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msg_type = msg["msg_type"]
            if msg_type == "status":
                if msg["content"].get("execution_state") == "idle":
                    await self._take_reply(msg_id)
                    return CellEnd.IDLE
                continue
            feed(msg_type, msg["content"])

    async def _take_reply(self, msg_id: str) -> None:
        """Consume the shell reply of ``msg_id`` (normally already queued), so replies never pile up."""
        assert self.kc is not None
        for _ in range(8):
            try:
                reply = await self.kc.get_shell_msg(timeout=0.5)
            except Empty:
                return
            if reply["parent_header"].get("msg_id") == msg_id:
                return

    async def interrupt(self) -> None:
        """Ask the kernel to interrupt the running cell (``KeyboardInterrupt`` in the code)."""
        if self.km is not None and not self._closed:
            with contextlib.suppress(Exception):
                await self.km.interrupt_kernel()

    # ------------------------------------------------------------------------------------- state
    async def is_alive(self) -> bool:
        """Whether the launched process is still running."""
        if self.km is None or self._closed:
            return False
        alive = await self.km.is_alive()
        if not alive and self._exit_code is None:
            process = getattr(self.km.provisioner, "process", None)
            self._exit_code = getattr(process, "returncode", None)
        return alive

    @property
    def exit_code(self) -> int | None:
        """Exit status of the launched process once it is known to have exited."""
        return self._exit_code

    @property
    def pid(self) -> int | None:
        """Host pid of the launched process (bubblewrap's, under the sandbox)."""
        provisioner = self.km.provisioner if self.km is not None else None
        return getattr(provisioner, "pid", None)

    @property
    def closed(self) -> bool:
        return self._closed

    def last_output(self) -> str:
        """The last bytes the kernel process wrote outside the Jupyter protocol (for error messages)."""
        text = self._tail.text().strip() if self._tail is not None else ""
        return text or "(no output)"

    # ------------------------------------------------------------------------------------- close
    async def close(self) -> None:
        """Kill the kernel and every process of its sandbox, and remove its directories. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            if self.km is not None and self.km.has_kernel:
                # No polite shutdown: nothing in a sandbox is worth waiting for, and `now` kills the
                # whole process group; bubblewrap's pid namespace takes every descendant with it.
                await self.km.shutdown_kernel(now=True)
        except Exception as err:  # still remove the directories
            log.debug("error while killing kernel: %s", err)
        finally:
            if self._tail is not None:
                self._tail.stop()
            process = getattr(self.km.provisioner, "process", None) if self.km is not None else None
            for stream in (getattr(process, "stdout", None), getattr(process, "stdin", None)):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
            self.dirs.remove()
            _LIVE_DIRS.discard(self.dirs)


_CONTEXT: zmq.asyncio.Context | None = None


def _shared_context() -> zmq.asyncio.Context:
    """One ZeroMQ context (one I/O thread) for all kernels of this process."""
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT.closed:
        _CONTEXT = zmq.asyncio.Context()
    return _CONTEXT


class KernelFactory:
    """Starts kernels with one fixed policy and set of limits; the source of kernels for sessions and pools.

    Args:
        policy: Isolation policy or its name (default: bubblewrap).
        limits: Resource limits of each kernel.
        write_cap: Longest single stdout/stderr write a kernel sends whole.
        startup_timeout: Seconds a kernel may take to answer after launch.
        matplotlib: Prepare matplotlib (font cache, CJK fallback fonts) for the kernels.
    """

    def __init__(
        self,
        policy: IsolationPolicy | PolicyName | None = None,
        limits: ResourceLimits | None = None,
        *,
        write_cap: int = 1_000_000,
        startup_timeout: float = 60.0,
        matplotlib: bool = True,
    ) -> None:
        self.policy = get_policy(policy)
        self.limits = limits or ResourceLimits()
        self.write_cap = write_cap
        self.startup_timeout = startup_timeout
        self.matplotlib = matplotlib
        self._seed: Path | None = None
        self._seed_tried = False
        self._seed_lock = asyncio.Lock()

    async def prepare(self) -> Path | None:
        """One-time set-up before the first kernel: remove directories of kernels whose owner died,
        and build matplotlib's shared font cache and rc file (seconds, the first time on a machine).

        Returns:
            The directory bound into each kernel, or ``None`` when matplotlib is not prepared (its
            absence is not fatal: kernels then build their own cache, slowly, on first import).
        """
        async with self._seed_lock:
            if not self._seed_tried:
                self._seed_tried = True
                await asyncio.to_thread(KernelDirs.sweep_stale)
                if self.matplotlib:
                    from qwenkit.sandbox.fonts import matplotlib_seed

                    try:
                        self._seed = await asyncio.to_thread(matplotlib_seed)
                    except Exception as err:
                        log.warning("could not prepare matplotlib for sandbox kernels: %s", err)
        return self._seed

    async def acquire_kernel(self) -> SandboxKernel:
        """Start a new kernel and return it once it answers."""
        return await SandboxKernel.start(
            self.policy, self.limits, write_cap=self.write_cap, mpl_seed=await self.prepare(),
            startup_timeout=self.startup_timeout,
        )

    async def release_kernel(self, kernel: SandboxKernel) -> None:
        """Kill a kernel that is no longer needed."""
        await kernel.close()
