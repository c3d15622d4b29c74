"""The host side of one sandboxed kernel started by a gateway through the ``qwenkit-sandbox`` kernelspec.

A gateway (Jupyter Kernel Gateway, Enterprise Gateway) writes a TCP connection file and runs
``python -m qwenkit.sandbox.kernelspec launch -f FILE``. The kernel itself cannot listen on those TCP
ports: it runs under bubblewrap with no network at all. So this process

1. starts the kernel exactly as a local qwenkit kernel (`BubblewrapPolicy`, `ResourceLimits`, the
   in-sandbox `_launch.py`) with a private *ipc* connection file (same key, Unix sockets in a
   directory bound into the sandbox);
2. forwards each of the gateway's TCP ports to the kernel's socket with a ZeroMQ proxy (pyzmq's
   `zmq.devices.ThreadProxy`: ROUTER/DEALER for shell, control and stdin and the heartbeat, XPUB/XSUB
   for iopub); messages pass through unchanged and stay signed with the gateway's key;
3. puts the kernel in its CPU share once it is up, and exits with the kernel: when the gateway kills
   this process, bubblewrap's ``--die-with-parent`` takes the sandbox with it.

Interrupts arrive as ``interrupt_request`` messages on the control channel (the kernelspec says
``interrupt_mode: message``): a SIGINT would reach this process, not the kernel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import zmq
from zmq.devices.proxydevice import ThreadProxy

from qwenkit.sandbox.cpu import KernelCpu, detect_cpu_control, sweep_stale_cgroups
from qwenkit.sandbox.isolation import BubblewrapPolicy
from qwenkit.sandbox.isolation.base import KernelDirs, LaunchRequest
from qwenkit.sandbox.kernel import KERNEL_ARGS, MAX_MESSAGE_BYTES
from qwenkit.sandbox.limits import ResourceLimits

log = logging.getLogger("qwenkit.sandbox.kernelspec")

_CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
_STARTUP_TIMEOUT = 60.0


def _read_connection(path: str) -> dict[str, Any]:
    info = json.loads(Path(path).read_text())
    if not isinstance(info, dict) or info.get("transport", "tcp") != "tcp":
        raise SystemExit(f"qwenkit-sandbox: {path} is not a TCP kernel connection file")
    return info


def _write_ipc_connection(dirs: KernelDirs, info: dict[str, Any]) -> dict[str, int]:
    """The kernel's own connection file: ipc sockets in ``dirs.conn``, the gateway's key and scheme."""
    from jupyter_client.connect import write_connection_file

    ports = {name: i + 1 for i, name in enumerate(_CHANNELS)}
    write_connection_file(
        str(dirs.connection_file), transport="ipc", ip=dirs.ipc_prefix, key=str(info.get("key", "")).encode(),
        signature_scheme=str(info.get("signature_scheme", "hmac-sha256")), shell_port=ports["shell"],
        iopub_port=ports["iopub"], stdin_port=ports["stdin"], control_port=ports["control"], hb_port=ports["hb"],
    )
    return ports


def _start_proxies(info: dict[str, Any], dirs: KernelDirs, ports: dict[str, int]) -> list[ThreadProxy]:
    ip = str(info.get("ip") or "127.0.0.1")
    proxies = []
    for name in _CHANNELS:
        front, back = (zmq.XPUB, zmq.XSUB) if name == "iopub" else (zmq.ROUTER, zmq.DEALER)
        proxy = ThreadProxy(front, back)
        for opt, value in ((zmq.LINGER, 0), (zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)):
            proxy.setsockopt_in(opt, value)
            proxy.setsockopt_out(opt, value)
        proxy.setsockopt_out(zmq.RECONNECT_IVL, 10)  # the kernel binds a moment after launch
        proxy.bind_in(f"tcp://{ip}:{int(info[f'{name}_port'])}")
        proxy.connect_out(f"ipc://{dirs.ipc_prefix}-{ports[name]}")
        proxy.daemon = True
        proxy.start()
        proxies.append(proxy)
    return proxies


def _die_with_parent() -> None:
    """Get SIGTERM when the gateway that started this process dies, so no kernel outlives it."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the gateway died before the line above ran
        raise SystemExit("qwenkit-sandbox: the gateway that started this kernel is gone")


def launch(connection_file: str, limits: ResourceLimits | None = None) -> int:
    """Run one sandboxed kernel for a gateway until it exits; returns its exit status.

    Args:
        connection_file: The gateway's (TCP) connection file.
        limits: The kernel's resource limits (default: `ResourceLimits()`).
    """
    logging.basicConfig(level=logging.WARNING, format="qwenkit-sandbox: %(message)s")
    _die_with_parent()
    info = _read_connection(connection_file)
    limits = limits or ResourceLimits()
    policy = BubblewrapPolicy()
    policy.ensure_available()
    KernelDirs.sweep_stale()
    control = detect_cpu_control()
    sweep_stale_cgroups(control)
    seed: Path | None = None
    try:
        from qwenkit.sandbox.fonts import matplotlib_seed

        seed = matplotlib_seed()
    except Exception as err:  # matplotlib still works, it only builds its font cache on first use
        log.warning("could not prepare matplotlib: %s", err)

    dirs = KernelDirs.create()
    cpu = KernelCpu(control, limits.cpu_cores)
    process: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
        cpu.close()
        dirs.remove()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts come as messages (interrupt_mode)
    try:
        ports = _write_ipc_connection(dirs, info)
        plan = policy.plan(LaunchRequest(
            dirs=dirs, limits=limits, write_cap=1_000_000, mpl_seed=seed,
            kernel_args=("-f", str(dirs.connection_file), *KERNEL_ARGS),
        ))
        policy.prepare(dirs)
        policy.on_start()
        _start_proxies(info, dirs, ports)
        process = subprocess.Popen(plan.argv, env=plan.env, cwd=plan.cwd, stdin=subprocess.DEVNULL)
        sockets = [Path(f"{dirs.ipc_prefix}-{port}") for port in ports.values()]
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        up = False
        while (code := process.poll()) is None:
            if not up and all(s.exists() for s in sockets):
                # Every socket is bound: the kernel is up, and every process now is the sandbox's own.
                up = True
                cpu.attach(process.pid)
                policy.lock_down(plan)
            elif not up and time.monotonic() > deadline:
                log.warning("the kernel did not start within %g s", _STARTUP_TIMEOUT)
                process.kill()
            time.sleep(0.05 if not up else 0.5)
        return code
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        cpu.close()
        dirs.remove()
        sys.stdout.flush()
        sys.stderr.flush()
