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
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from qwenkit.errors import KernelStartError
from qwenkit.sandbox.cpu import CpuControl, KernelCpu, detect_cpu_control, sweep_stale_cgroups
from qwenkit.sandbox.isolation import IsolationPolicy, PolicyName, get_policy
from qwenkit.sandbox.isolation.base import KernelDirs, LaunchPlan, LaunchRequest
from qwenkit.sandbox.limits import MiB, ResourceLimits

if TYPE_CHECKING:
    from qwenkit.sandbox.provider import Kernel

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
    """A client whose sockets refuse oversized messages and reconnect quickly.

    jupyter_client has no public way to set socket options, so this overrides its private socket
    factory (`_create_connected_socket`, using `_make_url`); this class is the only place that does.
    """

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


class _OneSpec(KernelSpecManager):
    """A kernel spec manager that knows exactly one spec: the command line the policy built.

    This is jupyter_client's public way to hand a kernel manager its spec (``kernel_name`` plus
    ``kernel_spec_manager``), instead of setting the manager's private ``_kernel_spec``.
    """

    def __init__(self, spec: KernelSpec) -> None:
        super().__init__()
        self._spec = spec

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self._spec

    def find_kernel_specs(self) -> dict[str, str]:
        return {}


_SPEC_NAME = "qwenkit-sandbox"


def _parent_id(msg: Any) -> str | None:
    """The ``msg_id`` of a message's parent, or ``None`` when the message does not have a usable one.

    Messages come from the kernel, which is untrusted: any field may be missing or of any type.
    """
    parent = msg.get("parent_header") if isinstance(msg, dict) else None
    value = parent.get("msg_id") if isinstance(parent, dict) else None
    return value if isinstance(value, str) else None


def _content(msg: dict[str, Any]) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}


def _is_idle(msg: dict[str, Any]) -> bool:
    return msg.get("msg_type") == "status" and _content(msg).get("execution_state") == "idle"


async def _receive(get: Callable[..., Any], timeout: float) -> dict[str, Any] | None:
    """The next message from a channel's ``get_msg``-like ``get``; ``None`` for one that could not be read.

    Raises:
        Empty: Nothing came within ``timeout``.
    """
    try:
        msg = await get(timeout=timeout)
    except Empty:
        raise
    except Exception as err:  # a malformed frame, bad JSON or a bad signature: skip it, never crash
        log.debug("unreadable kernel message skipped: %s", err)
        return None
    return msg if isinstance(msg, dict) else None


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

    def __init__(self, policy: IsolationPolicy, dirs: KernelDirs, plan: LaunchPlan, cpu: KernelCpu) -> None:
        self.policy = policy
        self.cpu = cpu
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
        cpu_control: CpuControl | None = None,
    ) -> SandboxKernel:
        """Launch a kernel under ``policy`` and wait until it answers.

        Args:
            policy: Isolation policy (its availability is checked first).
            limits: Resource limits for the kernel.
            write_cap: Longest single stdout/stderr write the kernel sends whole.
            mpl_seed: Directory from `qwenkit.sandbox.fonts.matplotlib_seed`, or ``None``.
            startup_timeout: Seconds to wait for the first answer.
            cpu_control: How the kernel gets its CPU share (default: `detect_cpu_control`).

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
        kernel = cls(policy, dirs, plan, KernelCpu(cpu_control or detect_cpu_control(), limits.cpu_cores))
        try:
            await kernel._launch(startup_timeout)
        except BaseException:
            await kernel.close()
            raise
        return kernel

    async def _launch(self, startup_timeout: float) -> None:
        # The whole command line comes from the policy; interrupts go over the control channel,
        # because a SIGINT to the launched process would reach bubblewrap, not the kernel.
        spec = KernelSpec(
            argv=self.plan.argv, display_name="qwenkit sandbox", language="python",
            interrupt_mode="message", env={}, metadata={},
        )
        km = AsyncKernelManager(
            transport="ipc", ip=self.dirs.ipc_prefix, connection_file=str(self.dirs.connection_file),
            context=_shared_context(), kernel_name=_SPEC_NAME, kernel_spec_manager=_OneSpec(spec),
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
        if self.pid is not None:
            # Before any cell ran: every process now is the sandbox's own; later ones inherit the cgroup.
            self.cpu.attach(self.pid)
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
                    reply = await _receive(self.kc.get_shell_msg, 0.05)
                except Empty:
                    continue
                if _parent_id(reply) != msg_id:
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
                msg = await _receive(self.kc.get_iopub_msg, left)
            except Empty:
                return False
            if msg is not None and _parent_id(msg) == msg_id and _is_idle(msg):
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
        """Pass the request's messages to ``feed`` until it is idle, time runs out, or the kernel dies.

        Args:
            msg_id: Id returned by `send`.
            deadline: ``time.monotonic()`` value to give up at.
            feed: Called with ``(msg_type, content)`` for every output message of the request, then
                with ``("execute_reply", content)`` for its reply (its ``status`` says whether it failed).
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
                msg = await _receive(channel.get_msg, min(left, 0.25))
            except Empty:
                msg = None
            if msg is None:
                if not await self.is_alive():
                    return CellEnd.DIED
                continue
            if _parent_id(msg) != msg_id:
                continue
            msg_type = msg.get("msg_type")
            if not isinstance(msg_type, str):
                continue
            if msg_type == "status":
                if _is_idle(msg):
                    reply = await self._take_reply(msg_id)
                    if reply is not None:
                        feed("execute_reply", reply)
                    return CellEnd.IDLE
                continue
            feed(msg_type, _content(msg))

    async def _take_reply(self, msg_id: str) -> dict[str, Any] | None:
        """Consume the shell reply of ``msg_id`` (normally already queued), so replies never pile up.

        Returns:
            The reply's content, or ``None`` when it did not come.
        """
        assert self.kc is not None
        for _ in range(8):
            try:
                reply = await _receive(self.kc.get_shell_msg, 0.5)
            except Empty:
                return None
            if reply is not None and _parent_id(reply) == msg_id:
                return _content(reply)
        return None

    async def interrupt(self) -> None:
        """Ask the kernel to interrupt the running cell (``KeyboardInterrupt`` in the code)."""
        if self.km is not None and not self._closed:
            with contextlib.suppress(Exception):
                await self.km.interrupt_kernel()

    def reap_strays(self) -> int:
        """Kill the background processes cells left running, where no cgroup bounds them (see
        `qwenkit.sandbox.cpu`); returns how many."""
        return 0 if self._closed else self.cpu.reap()

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

    @property
    def reaps_strays(self) -> bool:
        """Whether no cgroup bounds the kernel, so cells' background processes are reaped after each cell."""
        return self.cpu.mode == "reaper"

    @property
    def death_reason(self) -> str | None:
        """Always ``None``: a local kernel's death is described by its `exit_code`."""
        return None

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
            if self.cpu.cgroup is not None:
                # Waits (briefly) for killed processes to leave the cgroup: not on the event loop's thread.
                await asyncio.to_thread(self.cpu.close)
            if self._tail is not None:
                self._tail.stop()
            process = getattr(self.km.provisioner, "process", None) if self.km is not None else None
            for stream in (getattr(process, "stdout", None), getattr(process, "stdin", None)):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
            self.dirs.remove()
            _LIVE_DIRS.discard(self.dirs)


    def kill_now(self) -> None:
        """Kill the kernel at once, without an event loop: for finalisers and other threads. Idempotent.

        SIGKILLs the launched process's group (bubblewrap's pid namespace takes every process inside
        with it), collects its exit status and removes its directories and cgroup. The client's
        sockets are left to the garbage collector: they belong to the event loop's thread, and
        touching them from here would not be safe.
        """
        if self._closed:
            return
        self._closed = True
        process = self._process()
        pid = self.pid
        if pid is not None:
            # jupyter_client starts kernels in a new session, so the group id is the launched pid.
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if isinstance(process, subprocess.Popen):
            with contextlib.suppress(Exception):
                process.wait(timeout=5)
        self.cpu.close()
        self.dirs.remove()
        _LIVE_DIRS.discard(self.dirs)

    def _process(self) -> Any:
        """The launched process object of the local provisioner (``None`` before launch)."""
        return getattr(self.km.provisioner, "process", None) if self.km is not None else None


_CONTEXT: zmq.asyncio.Context | None = None


def _shared_context() -> zmq.asyncio.Context:
    """One ZeroMQ context (one I/O thread) for all kernels of this process."""
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT.closed:
        _CONTEXT = zmq.asyncio.Context()
    return _CONTEXT


class KernelFactory:
    """The local kernel provider: starts kernels on this machine with one fixed policy and set of limits.

    The source of kernels for sessions and pools (see `qwenkit.sandbox.provider.KernelProvider`; the
    other provider is `qwenkit.sandbox.gateway.GatewayProvider`).

    Args:
        policy: Isolation policy or its name (default: bubblewrap).
        limits: Resource limits of each kernel.
        write_cap: Longest single stdout/stderr write a kernel sends whole.
        startup_timeout: Seconds a kernel may take to answer after launch.
        matplotlib: Prepare matplotlib (font cache, CJK fallback fonts) for the kernels.
        cpu_control: How kernels get their CPU share (default: what `detect_cpu_control` finds).
    """

    def __init__(
        self,
        policy: IsolationPolicy | PolicyName | None = None,
        limits: ResourceLimits | None = None,
        *,
        write_cap: int = 1_000_000,
        startup_timeout: float = 60.0,
        matplotlib: bool = True,
        cpu_control: CpuControl | None = None,
    ) -> None:
        self.policy = get_policy(policy)
        self.limits = limits or ResourceLimits()
        self.write_cap = write_cap
        self.startup_timeout = startup_timeout
        self.matplotlib = matplotlib
        self._seed: Path | None = None
        self._cpu: CpuControl | None = cpu_control
        self._seed_tried = False
        self._seed_lock = asyncio.Lock()

    name = "local"

    async def check(self) -> None:
        """Raise `SandboxUnavailable` when the policy cannot run on this machine."""
        self.policy.ensure_available()

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
                if self._cpu is None:
                    self._cpu = await asyncio.to_thread(detect_cpu_control)
                await asyncio.to_thread(sweep_stale_cgroups, self._cpu)
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
            startup_timeout=self.startup_timeout, cpu_control=self._cpu,
        )

    async def release_kernel(self, kernel: Kernel) -> None:
        """Kill a kernel that is no longer needed."""
        await kernel.close()
