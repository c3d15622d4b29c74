"""The ``unsandboxed`` policy: a plain local kernel, for machines without bubblewrap, chosen explicitly.

It still clears the environment (no API keys in the kernel) and applies the rlimits that make sense
for a process sharing the host user (address space, file size, open files, no core files), but the
code can read and write whatever this user can, and reach the network. Every start logs a warning.
"""

from __future__ import annotations

import logging
import sys

from qwenkit.sandbox.fonts import seed_files
from qwenkit.sandbox.isolation.base import LAUNCHER, Check, IsolationPolicy, LaunchPlan, LaunchRequest, PolicyCheck

log = logging.getLogger("qwenkit.sandbox")


class UnsandboxedPolicy(IsolationPolicy):
    """Run the kernel as an ordinary child process of this one (no isolation)."""

    name = "unsandboxed"
    sandboxed = False

    def check(self) -> PolicyCheck:
        return PolicyCheck(self.name, (Check("unsandboxed", True, "always available; code is NOT isolated"),))

    def on_start(self) -> None:
        log.warning(
            "starting a code-interpreter kernel WITHOUT a sandbox (policy 'unsandboxed'): the code it runs "
            "can read this user's files and reach the network"
        )

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        dirs = request.dirs
        work = dirs.host_work
        mpl = dirs.base / "mpl"
        mpl.mkdir(mode=0o700, exist_ok=True)
        if request.mpl_seed is not None:
            for name, src in seed_files(request.mpl_seed).items():
                (mpl / name).write_bytes(src.read_bytes())
        limits = request.limits
        # RLIMIT_NPROC counts all processes of this host user, so it is left alone here.
        rlimits = limits.rlimit_args(exclude=("NPROC",))
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "MPLCONFIGDIR": str(mpl),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "IPYTHONDIR": str(dirs.base / "ipython"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        argv = [sys.executable, "-I", str(LAUNCHER), *rlimits, "--write-cap", str(request.write_cap),
                "--chdir", str(work), "--", *request.kernel_args]
        return LaunchPlan(argv=argv, env=env, cwd=str(work), workdir=str(work))
