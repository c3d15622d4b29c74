"""Resource limits applied to a sandboxed kernel (rlimits inside, tmpfs sizes, per-cell client limits)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024
GiB = 1024 * MiB


class ResourceLimits(BaseModel):
    """Limits enforced inside the sandbox by the kernel's launcher and by bubblewrap.

    The rlimits are set as both soft and hard limits before ipykernel starts, so code in the kernel
    cannot raise them again.

    Attributes:
        address_space_bytes: ``RLIMIT_AS`` per process; a memory bomb gets ``MemoryError``.
        max_processes: ``RLIMIT_NPROC``; counts threads too, and is per sandbox (each sandbox has
            its own user namespace), so a fork bomb cannot starve the host or other kernels.
        max_file_bytes: ``RLIMIT_FSIZE``; writing past it fails with ``EFBIG``.
        max_open_files: ``RLIMIT_NOFILE``.
        workdir_bytes: Size of the tmpfs that is the kernel's working directory (the only writable
            place besides ``/tmp``); filling it fails with ``ENOSPC``.
        tmp_bytes: Size of the tmpfs mounted on ``/tmp``.
        shm_bytes: Size of the tmpfs mounted on ``/dev/shm``.
        cpu_cores: CPU quota of each kernel, in cores, where a cgroup can be made for it (see
            `qwenkit.sandbox.cpu`); all its processes share it.
        child_cpu_seconds: ``RLIMIT_CPU`` of each process the kernel forks (not of the kernel itself),
            so a runaway background process ends even between cells (0: none).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    address_space_bytes: int = Field(default=4 * GiB, ge=256 * MiB)
    max_processes: int = Field(default=256, ge=16)
    max_file_bytes: int = Field(default=100 * MiB, ge=MiB)
    max_open_files: int = Field(default=1024, ge=64)
    workdir_bytes: int = Field(default=256 * MiB, ge=MiB)
    tmp_bytes: int = Field(default=64 * MiB, ge=MiB)
    shm_bytes: int = Field(default=16 * MiB, ge=MiB)
    cpu_cores: float = Field(default=1.0, gt=0.01)
    child_cpu_seconds: int = Field(default=300, ge=0)

    def rlimit_args(self, exclude: tuple[str, ...] = ()) -> list[str]:
        """Return the launcher's ``--rlimit NAME=VALUE`` and ``--child-cpu`` arguments (core files always off).

        Args:
            exclude: Names to leave out (``"NPROC"`` when the kernel shares the host user).
        """
        pairs = {
            "AS": self.address_space_bytes,
            "NPROC": self.max_processes,
            "FSIZE": self.max_file_bytes,
            "NOFILE": self.max_open_files,
            "CORE": 0,
        }
        out: list[str] = []
        for name, value in pairs.items():
            if name in exclude:
                continue
            out += ["--rlimit", f"{name}={value}"]
        if self.child_cpu_seconds:
            out += ["--child-cpu", str(self.child_cpu_seconds)]
        return out
