"""What an isolation policy is: a check of this machine, and the command that starts a kernel under it."""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from qwenkit.errors import SandboxUnavailable
from qwenkit.sandbox.limits import ResourceLimits

LAUNCHER = Path(__file__).resolve().parent.parent / "_launch.py"
"""The in-sandbox launcher script (stdlib + ipykernel only)."""

# ZeroMQ ipc endpoints are Unix socket paths, limited to 107 bytes; keep the per-kernel dir short.
_MAX_SOCKET_DIR = 80


@dataclass(frozen=True)
class Check:
    """One line of a policy check: what was tested, whether it passed, and why."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class PolicyCheck:
    """Whether a policy can run here, with the individual checks that decided it."""

    policy: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def reason(self) -> str:
        """The failed checks as one sentence (empty when all passed)."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)


@dataclass(frozen=True)
class KernelDirs:
    """The host directories of one kernel, all under one short, private base directory.

    Attributes:
        base: ``/tmp/qk-XXXXXXXX``; removed when the kernel is closed.
        conn: Holds the connection file (with the HMAC key) and the ipc sockets; mode 0700.
        stage: Mount points used to stage bind sources the sandbox user cannot reach (root only).
        host_work: Working directory on the host, used only by policies without their own tmpfs.
    """

    base: Path
    conn: Path
    stage: Path
    host_work: Path

    @classmethod
    def create(cls) -> KernelDirs:
        root = Path(tempfile.gettempdir())
        if len(str(root)) > _MAX_SOCKET_DIR - 20:
            root = Path("/tmp")
        base = Path(tempfile.mkdtemp(prefix="qk-", dir=root))
        conn, stage, work = base / "c", base / "s", base / "w"
        for d in (conn, stage, work):
            d.mkdir(mode=0o700)
        (base / "owner").write_text(str(os.getpid()))
        return cls(base=base, conn=conn, stage=stage, host_work=work)

    @staticmethod
    def sweep_stale() -> int:
        """Remove kernel directories left by processes of this user that died without cleaning up
        (killed with SIGKILL, say; their kernels died with them). Returns how many were removed."""
        removed = 0
        for root in {Path(tempfile.gettempdir()), Path("/tmp")}:
            for base in root.glob("qk-*"):
                try:
                    if base.stat().st_uid != os.geteuid():
                        continue
                    owner = int((base / "owner").read_text())
                except (OSError, ValueError):
                    continue
                if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
                    shutil.rmtree(base, ignore_errors=True)
                    removed += 1
        return removed

    @property
    def connection_file(self) -> Path:
        return self.conn / "kernel.json"

    @property
    def ipc_prefix(self) -> str:
        """The ``ip`` of an ipc-transport connection: sockets are ``<prefix>-<n>``."""
        return str(self.conn / "k")

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class LaunchPlan:
    """How to start one kernel: the full argv (``{connection_file}`` already filled) and its env.

    Attributes:
        argv: Command line; the kernel spec's ``argv``.
        env: The whole environment of the launched process (no inherited secrets).
        cwd: Host working directory of the launched process.
        workdir: The kernel's working directory as code inside sees it.
        lock_down: Called once the kernel answered; removes what it only needed while starting.
    """

    argv: list[str]
    env: dict[str, str]
    cwd: str
    workdir: str
    lock_down: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class LaunchRequest:
    """What a policy needs to know to build a `LaunchPlan`."""

    dirs: KernelDirs
    limits: ResourceLimits
    write_cap: int
    mpl_seed: Path | None
    kernel_args: tuple[str, ...]


class IsolationPolicy(ABC):
    """A way of running a kernel: its availability check and its launch command."""

    name: str = ""
    sandboxed: bool = True

    @abstractmethod
    def check(self) -> PolicyCheck:
        """Test whether this policy can run here (cached by implementations where it is costly)."""

    def ensure_available(self) -> None:
        """Raise `SandboxUnavailable` with the reason when `check` fails."""
        result = self.check()
        if not result.ok:
            raise SandboxUnavailable(
                f"the {self.name!r} isolation policy is not available on this machine: {result.reason()}. "
                "Run `qwenkit doctor` for details; choose policy='unsandboxed' only if you trust the code."
            )

    @abstractmethod
    def plan(self, request: LaunchRequest) -> LaunchPlan:
        """Build the command that starts one kernel under this policy."""

    def prepare(self, dirs: KernelDirs) -> None:  # noqa: B027 - optional hook
        """Adjust ownership of the kernel's directories before launch. Default: nothing."""

    def lock_down(self, plan: LaunchPlan) -> None:
        """Take away what the kernel needed only at start (called once it answered)."""
        for path in plan.lock_down:
            if os.geteuid() == 0:
                os.chown(path, 0, 0)
            os.chmod(path, 0o700)

    def on_start(self) -> None:  # noqa: B027 - optional hook
        """Called every time a kernel is started under this policy. Default: nothing."""
