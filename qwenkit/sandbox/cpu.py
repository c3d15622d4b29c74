"""A CPU share per kernel, so one conversation's busy processes cannot slow every other kernel down.

Two mechanisms, chosen once per process by `detect_cpu_control`:

- ``cgroup-v2`` / ``cgroup-v1``: each kernel gets its own cgroup under this process's cgroup with a
  CPU quota (``ResourceLimits.cpu_cores``); every process of the kernel, background ones included,
  shares it. Needs a writable cgroup with the ``cpu`` controller (root, or a delegated subtree).
- ``reaper``: where no such cgroup is writable, processes forked by the kernel get ``RLIMIT_CPU``
  (``ResourceLimits.child_cpu_seconds``, set by the launcher), and after each cell every process the
  cell left running in the background is killed (the result says how many).

``qwenkit doctor`` states which one is active.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

CpuMode = Literal["cgroup-v2", "cgroup-v1", "reaper"]
_PERIOD_US = 100_000
_PREFIX = "qk-"


@dataclass(frozen=True)
class CpuControl:
    """How kernels get their CPU share on this machine.

    Attributes:
        mode: ``cgroup-v2``, ``cgroup-v1`` or ``reaper``.
        base: The cgroup directory under which each kernel's cgroup is made (``None`` for ``reaper``).
        detail: One line for ``qwenkit doctor``.
    """

    mode: CpuMode
    base: Path | None
    detail: str


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of each cgroup mount of this process."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
                found.append((fields[3], fields[4], rest[0], set(rest[2].split(","))))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller list (``""`` for cgroup v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            out[controllers] = path
    return out


def _under(mount_root: str, mount_point: str, path: str) -> Path | None:
    if mount_root != "/" and not (path == mount_root or path.startswith(mount_root + "/")):
        return None
    rel = path[len(mount_root) :] if mount_root != "/" else path
    return Path(mount_point + rel.rstrip("/")) if rel not in ("", "/") else Path(mount_point)


def _probe(base: Path, quota_file: str, quota: str) -> bool:
    """Whether a child cgroup with a CPU quota can be made under ``base`` (made and removed again)."""
    probe = base / f"{_PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        (probe / quota_file).write_text(quota)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _detect_v2(mounts: list[tuple[str, str, str, set[str]]], own: dict[str, str]) -> CpuControl | None:
    path = own.get("")
    if path is None:
        return None
    for root, point, fstype, _ in mounts:
        if fstype != "cgroup2" or (base := _under(root, point, path)) is None:
            continue
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
            available = (base / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if "cpu" not in enabled and "cpu" in available:
            # Enabling a controller for children fails in a cgroup that holds processes (except the
            # root); that failure is the answer, not an error.
            with contextlib.suppress(OSError):
                (base / "cgroup.subtree_control").write_text("+cpu")
            with contextlib.suppress(OSError):
                enabled = (base / "cgroup.subtree_control").read_text().split()
        if "cpu" in enabled and _probe(base, "cpu.max", f"{_PERIOD_US} {_PERIOD_US}"):
            return CpuControl("cgroup-v2", base, f"cgroup v2 under {base}: a CPU quota per kernel")
    return None


def _detect_v1(mounts: list[tuple[str, str, str, set[str]]], own: dict[str, str]) -> CpuControl | None:
    for controllers, path in own.items():
        if "cpu" not in controllers.split(","):
            continue
        for root, point, fstype, options in mounts:
            if fstype != "cgroup" or "cpu" not in options or (base := _under(root, point, path)) is None:
                continue
            if _probe(base, "cpu.cfs_quota_us", str(_PERIOD_US)):
                return CpuControl("cgroup-v1", base, f"cgroup v1 under {base}: a CPU quota per kernel")
    return None


@functools.cache
def detect_cpu_control() -> CpuControl:
    """Find how kernels get a CPU share here (cached for the life of the process)."""
    mounts, own = _mounts(), _own_cgroups()
    found = _detect_v2(mounts, own) or _detect_v1(mounts, own)
    if found is not None:
        return found
    return CpuControl(
        "reaper", None,
        "no writable cgroup with the cpu controller: RLIMIT_CPU on processes a kernel forks, and "
        "background processes are killed after each cell",
    )


def sweep_stale_cgroups(control: CpuControl) -> int:
    """Remove empty kernel cgroups left by processes of qwenkit that died without cleaning up."""
    if control.base is None:
        return 0
    removed = 0
    with contextlib.suppress(OSError):
        for child in control.base.glob(f"{_PREFIX}*"):
            owner = child.name.split("-")[1] if child.name.count("-") >= 2 else ""
            if owner.isdigit() and int(owner) != os.getpid() and not psutil.pid_exists(int(owner)):
                with contextlib.suppress(OSError):
                    child.rmdir()
                    removed += 1
    return removed


class KernelCpu:
    """The CPU share of one kernel: its cgroup, or the list of its own processes for the reaper.

    Args:
        control: The machine's mechanism (`detect_cpu_control`).
        cores: CPU quota of the kernel in cores (cgroup modes).
    """

    def __init__(self, control: CpuControl, cores: float) -> None:
        self.control = control
        self.cores = cores
        self.cgroup: Path | None = None
        self._own: set[int] = set()
        self._root: int | None = None
        if control.base is not None:
            path = control.base / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            quota = max(int(_PERIOD_US * cores), 1000)
            try:
                path.mkdir()
                if control.mode == "cgroup-v2":
                    (path / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
                else:
                    (path / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
                    (path / "cpu.cfs_quota_us").write_text(str(quota))
                self.cgroup = path
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()

    @property
    def mode(self) -> CpuMode:
        """The mechanism in force for this kernel (``reaper`` when its cgroup could not be made)."""
        return self.control.mode if self.cgroup is not None else "reaper"

    def attach(self, root_pid: int) -> None:
        """Put the launched process and its descendants in the cgroup, or note them as the kernel's own.

        Called once the kernel answered and before any cell ran, so every process that exists is one
        the sandbox started; everything forked later inherits the cgroup.
        """
        self._root = root_pid
        try:
            root = psutil.Process(root_pid)
            pids = [root_pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.Error:
            return
        self._own = set(pids)
        if self.cgroup is not None:
            for pid in pids:
                with contextlib.suppress(OSError):
                    (self.cgroup / "cgroup.procs").write_text(str(pid))

    def strays(self) -> list[psutil.Process]:
        """Live processes under the kernel that it did not start with (background work of its cells)."""
        if self._root is None:
            return []
        try:
            children = psutil.Process(self._root).children(recursive=True)
        except psutil.Error:
            return []
        found = []
        for proc in children:
            with contextlib.suppress(psutil.Error):
                if proc.pid not in self._own and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    def reap(self) -> int:
        """In ``reaper`` mode, kill the processes cells left running; returns how many. No-op with a cgroup."""
        if self.cgroup is not None:
            return 0
        killed = 0
        for proc in self.strays():
            with contextlib.suppress(psutil.Error):
                proc.kill()
                killed += 1
        return killed

    def close(self) -> None:
        """Kill whatever is still in the cgroup (processes that left the kernel's tree too) and remove it."""
        cgroup = self.cgroup
        if cgroup is None:
            return
        for _ in range(50):
            try:
                pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pids = []
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            try:
                cgroup.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                time.sleep(0.01)  # killed processes take a moment to leave the cgroup
                continue
            self.cgroup = None
            return
