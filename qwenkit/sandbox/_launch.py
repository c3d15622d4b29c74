"""Kernel launcher that runs *inside* the sandbox: set rlimits, cap huge writes, then start ipykernel.

This file is bind-mounted alone (read-only) into the sandbox and run as a script with ``python -I``,
so it must import nothing from qwenkit: only the standard library and ipykernel.

Usage (built by the isolation policy, not by hand)::

    python -I _launch.py --rlimit AS=2147483648 ... --write-cap 1048576 -- -f /path/kernel.json ...

Everything after ``--`` is passed to ``ipykernel``'s ``IPKernelApp``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

_RLIMITS = {
    "AS": resource.RLIMIT_AS,
    "NPROC": resource.RLIMIT_NPROC,
    "FSIZE": resource.RLIMIT_FSIZE,
    "NOFILE": resource.RLIMIT_NOFILE,
    "CORE": resource.RLIMIT_CORE,
}


def _apply_rlimits(specs: list[str]) -> None:
    for spec in specs:
        name, _, value = spec.partition("=")
        limit = int(value)
        # Soft and hard alike, so the code in the kernel cannot raise its own limits again.
        resource.setrlimit(_RLIMITS[name], (limit, limit))


def _limit_children_cpu(seconds: int) -> None:
    """Give every process forked from the kernel ``RLIMIT_CPU`` of ``seconds`` (the kernel keeps none).

    A background busy loop then ends by itself even when nothing reaps it. Covers ``os.fork``,
    ``multiprocessing`` and ``pty`` children (IPython's ``!cmd``); ``subprocess`` forks without
    running fork hooks, so its children are left to the client's reaper or cgroup.
    """

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))

    os.register_at_fork(after_in_child=limit)


def _cap_writes(cap: int) -> None:
    """Keep stdout/stderr messages under about ``cap`` characters each.

    ipykernel buffers writes and sends them every 0.2 s; a print flood would otherwise build one
    enormous message per flush. A single long write keeps its head and tail; once a flush interval
    has buffered ``cap`` characters, further writes are dropped and counted, and the count is sent
    as a marker with the next message. This only spares honest code (``print(huge_frame)``); the
    client enforces its own limits and never relies on it.
    """
    from ipykernel import iostream

    # ipykernel has no public hook around its buffered flush; `_flush_buffers` is patched here only,
    # and a kernel without it still runs (the client's caps never rely on this).
    write, flush_buffers = iostream.OutStream.write, iostream.OutStream._flush_buffers
    counts: dict[int, list[int]] = {}  # id(stream) -> [buffered since last flush, dropped]

    def capped_write(self: iostream.OutStream, string: str) -> int | None:
        if not isinstance(string, str):
            return write(self, string)
        n = len(string)
        count = counts.setdefault(id(self), [0, 0])
        if n > cap:
            half = cap // 2 - 100
            string = f"{string[:half]}\n[... {n - 2 * half} characters dropped in the kernel ...]\n{string[-half:]}"
        if count[0] + len(string) > cap:
            count[1] += n
            return n
        count[0] += len(string)
        write(self, string)
        return n

    def capped_flush_buffers(self: iostream.OutStream):  # type: ignore[no-untyped-def]
        count = counts.setdefault(id(self), [0, 0])
        dropped, count[0], count[1] = count[1], 0, 0
        for parent, data in flush_buffers(self):
            if dropped:
                data += f"\n[... {dropped} characters dropped in the kernel ...]\n"
                dropped = 0
            yield parent, data

    iostream.OutStream.write = capped_write  # type: ignore[method-assign]
    iostream.OutStream._flush_buffers = capped_flush_buffers  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="qwenkit-sandbox-launch")
    parser.add_argument("--rlimit", action="append", default=[])
    parser.add_argument("--write-cap", type=int, default=0)
    parser.add_argument("--child-cpu", type=int, default=0)
    parser.add_argument("--chdir", default="")
    parser.add_argument("kernel_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    kernel_args = args.kernel_args[1:] if args.kernel_args[:1] == ["--"] else args.kernel_args

    _apply_rlimits(args.rlimit)
    if args.chdir:
        os.makedirs(args.chdir, exist_ok=True)
        os.chdir(args.chdir)
    if args.write_cap > 0:
        _cap_writes(args.write_cap)
    if args.child_cpu > 0:
        _limit_children_cpu(args.child_cpu)

    from ipykernel import kernelapp

    sys.argv = ["ipykernel", *kernel_args]
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main(sys.argv[1:])
