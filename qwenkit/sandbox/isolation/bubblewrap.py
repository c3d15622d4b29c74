"""The default isolation policy: the kernel runs under bubblewrap, as an unprivileged host user.

Inside the sandbox the kernel gets new user, pid, network, ipc and uts namespaces (no network at
all, only its own processes in ``/proc``), no capabilities, no further user namespaces, a cleared
environment, read-only ``/usr`` and Python, and three small writable tmpfs mounts (its working
directory, ``/tmp`` and ``/dev/shm``). The root of the sandbox and ``/dev`` are remounted read-only.

When the host process is root, the kernel must not be: bubblewrap is started through ``setpriv`` as
an unprivileged uid (``nobody`` by default), so its user namespace maps to that uid on the host.
Bind sources that uid cannot reach (a Python installed under ``/root``, say) are first bind-mounted
by root onto staging mount points in a private mount namespace (``unshare -m``), never on the host's.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from qwenkit.sandbox.fonts import seed_files
from qwenkit.sandbox.isolation.base import (
    LAUNCHER,
    Check,
    IsolationPolicy,
    KernelDirs,
    LaunchPlan,
    LaunchRequest,
    PolicyCheck,
)

WORKDIR = "/workspace"
"""The kernel's working directory inside the sandbox (a size-limited tmpfs)."""

LAUNCHER_INSIDE = "/opt/qwenkit/launch.py"
MPLCONFIGDIR = "/tmp/.config/matplotlib"
_NEEDED_FLAGS = ("--disable-userns", "--size", "--die-with-parent", "--cap-drop", "--remount-ro")
_ETC = ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/etc/alternatives", "/etc/mime.types")
_TOP = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def _reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` (no supplementary groups) can reach and read ``path``."""

    def allows(st: os.stat_result, bits: int) -> bool:
        if st.st_uid == uid:
            return st.st_mode & (bits << 6) == bits << 6
        if st.st_gid == gid:
            return st.st_mode & (bits << 3) == bits << 3
        return st.st_mode & bits == bits

    try:
        parts = path.parts
        for i in range(1, len(parts)):
            if not allows(os.stat(Path(*parts[:i])), 0o1):
                return False
        st = os.stat(path)
    except OSError:
        return False
    return allows(st, 0o5 if stat.S_ISDIR(st.st_mode) else 0o4)


def _python_roots() -> list[Path]:
    """Directories the kernel's Python needs, outermost first, nested ones dropped."""
    found = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        found.add(Path(sysconfig.get_paths()[key]))
    import site

    found.update(Path(p) for p in site.getsitepackages())
    found.add(Path(sys.executable).resolve().parent)
    roots: list[Path] = []
    for p in sorted((q.resolve() for q in found if q.exists()), key=lambda q: len(q.parts)):
        if p == Path("/usr") or Path("/usr") in p.parents:
            continue  # /usr is bound whole
        if not any(r == p or r in p.parents for r in roots):
            roots.append(p)
    return roots


@dataclass(frozen=True)
class _Bind:
    src: Path
    dest: str


class BubblewrapPolicy(IsolationPolicy):
    """Run each kernel in a bubblewrap sandbox.

    Args:
        bwrap: Path of the ``bwrap`` binary (default: found on ``PATH``).
        sandbox_uid: Host uid the kernel runs as when qwenkit runs as root (default: ``nobody``).
        sandbox_gid: Host gid likewise.
        extra_ro_binds: More host paths to show read-only inside, at the same path (data sets, ...).
        hostname: Host name inside the sandbox.
    """

    name = "bubblewrap"
    sandboxed = True

    def __init__(
        self,
        bwrap: str | None = None,
        sandbox_uid: int = 65534,
        sandbox_gid: int = 65534,
        extra_ro_binds: tuple[str, ...] = (),
        hostname: str = "sandbox",
    ) -> None:
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"
        self.sandbox_uid = sandbox_uid
        self.sandbox_gid = sandbox_gid
        self.extra_ro_binds = tuple(extra_ro_binds)
        self.hostname = hostname

    # ----------------------------------------------------------------------------------- checks
    @property
    def drops_root(self) -> bool:
        """Whether the host process is root, so the kernel is started as ``sandbox_uid`` instead."""
        return os.geteuid() == 0

    def _uid_gid(self) -> tuple[int, int]:
        return (self.sandbox_uid, self.sandbox_gid) if self.drops_root else (os.getuid(), os.getgid())

    def check(self) -> PolicyCheck:
        return _check_cached(self.bwrap, self.drops_root, self.sandbox_uid, self.sandbox_gid)

    # --------------------------------------------------------------------------------- launching
    def prepare(self, dirs: KernelDirs) -> None:
        if self.drops_root:
            # Root reaches everything anyway; the kernel's uid must be able to create its sockets.
            os.chmod(dirs.base, 0o711)
            os.chmod(dirs.stage, 0o711)
            os.chown(dirs.conn, self.sandbox_uid, self.sandbox_gid)
            if dirs.connection_file.exists():
                os.chown(dirs.connection_file, self.sandbox_uid, self.sandbox_gid)

    def _binds(self, request: LaunchRequest) -> list[_Bind]:
        binds = [_Bind(p, str(p)) for p in _python_roots()]
        binds += [_Bind(Path(p), p) for p in self.extra_ro_binds]
        binds.append(_Bind(LAUNCHER, LAUNCHER_INSIDE))
        if request.mpl_seed is not None:
            binds += [_Bind(src, f"{MPLCONFIGDIR}/{name}") for name, src in seed_files(request.mpl_seed).items()]
        return binds

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        uid, gid = self._uid_gid()
        dirs = request.dirs
        limits = request.limits
        python = str(Path(sys.executable))
        args: list[str] = [
            self.bwrap,
            "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--disable-userns",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", self.hostname,
            "--clearenv",
        ]
        env_inside = {
            "PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": WORKDIR,
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "MPLCONFIGDIR": MPLCONFIGDIR,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "IPYTHONDIR": "/tmp/.ipython",
            "XDG_CACHE_HOME": "/tmp/.cache",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for key, value in env_inside.items():
            args += ["--setenv", key, value]

        # The system, read-only: /usr whole, the top-level links or dirs as the host has them.
        args += ["--ro-bind", "/usr", "/usr"]
        for top in _TOP:
            p = Path(top)
            if p.is_symlink():
                args += ["--symlink", os.readlink(p), top]
            elif p.is_dir():
                args += ["--ro-bind", top, top]
        for etc in _ETC:
            args += ["--ro-bind-try", etc, etc]

        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm"]
        args += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        args += ["--size", str(limits.workdir_bytes), "--tmpfs", WORKDIR]
        args += ["--dir", MPLCONFIGDIR]

        staged: list[tuple[Path, Path]] = []
        for i, bind in enumerate(self._binds(request)):
            src = bind.src
            if self.drops_root and not _reachable(src, uid, gid):
                target = dirs.stage / str(i)
                if src.is_dir():
                    target.mkdir(mode=0o755)
                else:
                    target.touch(mode=0o644)
                staged.append((src, target))
                src = target
            args += ["--ro-bind", str(src), bind.dest]

        args += ["--bind", str(dirs.conn), str(dirs.conn)]
        args += ["--remount-ro", "/dev", "--remount-ro", "/"]
        args += ["--chdir", WORKDIR, "--"]
        args += [python, "-I", LAUNCHER_INSIDE, *limits.rlimit_args(), "--write-cap", str(request.write_cap)]
        args += ["--", *request.kernel_args]

        if self.drops_root:
            args = [
                _which("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--", *args,
            ]
            if staged:
                args = _staging_prefix(staged) + args
        return LaunchPlan(
            argv=args, env={"PATH": "/usr/bin:/bin"}, cwd=str(dirs.base), workdir=WORKDIR,
            lock_down=[dirs.conn] if self.drops_root else [],
        )


def _which(name: str) -> str:
    return shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin") or name


def _staging_prefix(staged: list[tuple[Path, Path]]) -> list[str]:
    """Command that bind-mounts each (source, target) read-only in a private mount namespace, then execs."""
    script = 'while [ "$1" != -- ]; do mount --bind -o ro "$1" "$2" || exit 97; shift 2; done; shift; exec "$@"'
    pairs = [str(p) for pair in staged for p in pair]
    return [_which("unshare"), "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
            *pairs, "--"]


@functools.lru_cache(maxsize=8)
def _check_cached(bwrap: str, drops_root: bool, uid: int, gid: int) -> PolicyCheck:
    checks: list[Check] = []
    path = shutil.which(bwrap)
    if path is None:
        checks.append(Check("bwrap", False, f"{bwrap!r} not found; install the Debian package `bubblewrap`"))
        return PolicyCheck("bubblewrap", tuple(checks))
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as err:
        checks.append(Check("bwrap", False, f"cannot run {path}: {err}"))
        return PolicyCheck("bubblewrap", tuple(checks))
    missing = [f for f in _NEEDED_FLAGS if f not in help_text]
    checks.append(Check(
        "bwrap", not missing,
        f"{path} ({version})" + (f" lacks {', '.join(missing)}; bubblewrap >= 0.8 is needed" if missing else ""),
    ))
    if missing:
        return PolicyCheck("bubblewrap", tuple(checks))
    prefix: list[str] = []
    if drops_root:
        setpriv = shutil.which("setpriv")
        checks.append(Check(
            "drop root", setpriv is not None,
            f"running as root: kernels run as uid {uid} via {setpriv}" if setpriv
            else "running as root but `setpriv` (util-linux) is missing, so the kernel cannot drop root",
        ))
        if setpriv is None:
            return PolicyCheck("bubblewrap", tuple(checks))
        prefix = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
                  "--bounding-set=-all", "--"]
        unreachable = [str(p) for p in [*_python_roots(), LAUNCHER] if not _reachable(p, uid, gid)]
        if unreachable:
            tools = [t for t in ("unshare", "mount") if shutil.which(t) is None]
            checks.append(Check(
                "staging", not tools,
                f"uid {uid} cannot reach {', '.join(unreachable)}; they are staged with unshare+mount"
                + (f", but {' and '.join(tools)} is missing" if tools else ""),
            ))
    else:
        checks.append(Check("drop root", True, f"not root: kernels run as this user (uid {os.getuid()})"))
    probe = [
        *prefix, path, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--disable-userns", "--die-with-parent", "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--proc", "/proc", "--dev", "/dev", "--size", "1048576", "--tmpfs", "/tmp", "--", "/usr/bin/true",
    ]
    try:
        run = subprocess.run(probe, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        ok, detail = run.returncode == 0, run.stderr.strip() or f"exit code {run.returncode}"
    except (OSError, subprocess.SubprocessError) as err:
        ok, detail = False, str(err)
    checks.append(Check(
        "namespaces", ok,
        "user, pid, net, ipc and uts namespaces work" if ok
        else f"bwrap could not create its namespaces ({detail}); user namespaces may be disabled "
        "(sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces, or a container without them)",
    ))
    return PolicyCheck("bubblewrap", tuple(checks))


def describe(argv: list[str]) -> str:
    """Shell-quoted command line, for logs and `qwenkit doctor`."""
    return shlex.join(argv)
