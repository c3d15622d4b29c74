"""The CPU share mechanism's bookkeeping (no kernel needed; the real cgroup and reaper runs are in
test_hostile.py)."""

from __future__ import annotations

import os
from pathlib import Path

from qwenkit.sandbox.cpu import CpuControl, KernelCpu, detect_cpu_control, sweep_stale_cgroups
from qwenkit.sandbox.limits import ResourceLimits


def test_detection_names_one_mechanism() -> None:
    control = detect_cpu_control()
    assert control.mode in ("cgroup-v2", "cgroup-v1", "reaper") and control.detail
    assert (control.base is None) == (control.mode == "reaper")


def test_a_cgroup_that_cannot_be_made_falls_back_to_the_reaper(tmp_path: Path) -> None:
    cpu = KernelCpu(CpuControl("cgroup-v1", tmp_path / "not-there", "test"), cores=1.0)
    assert cpu.mode == "reaper" and cpu.cgroup is None and cpu.reap() == 0 and cpu.strays() == []
    cpu.close()  # nothing to remove


def test_a_plain_directory_gets_the_quota_files(tmp_path: Path) -> None:
    # A directory that accepts the files stands in for a cgroup: the quota written is cores x period.
    cpu = KernelCpu(CpuControl("cgroup-v2", tmp_path, "test"), cores=0.5)
    assert cpu.cgroup is not None and cpu.mode == "cgroup-v2"
    assert (cpu.cgroup / "cpu.max").read_text() == "50000 100000"
    (cpu.cgroup / "cpu.max").unlink()
    cpu.close()
    assert cpu.cgroup is None and list(tmp_path.iterdir()) == []


def test_stale_kernel_cgroups_of_dead_owners_are_swept(tmp_path: Path) -> None:
    dead = tmp_path / "qk-999999999-abcd"
    mine = tmp_path / f"qk-{os.getpid()}-abcd"
    other = tmp_path / "unrelated"
    for d in (dead, mine, other):
        d.mkdir()
    assert sweep_stale_cgroups(CpuControl("cgroup-v1", tmp_path, "test")) == 1
    assert not dead.exists() and mine.exists() and other.exists()


def test_limits_pass_the_child_cpu_limit_to_the_launcher() -> None:
    args = ResourceLimits(child_cpu_seconds=42).rlimit_args()
    assert args[-2:] == ["--child-cpu", "42"]
    assert "--child-cpu" not in ResourceLimits(child_cpu_seconds=0).rlimit_args()
