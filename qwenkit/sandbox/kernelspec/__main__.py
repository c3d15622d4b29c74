"""``python -m qwenkit.sandbox.kernelspec install [--prefix DIR | --user] [--name NAME] [--python PATH]`` and
``... launch -f CONNECTION_FILE`` (the command the installed kernelspec runs; not for people)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwenkit.sandbox.kernelspec")
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install the qwenkit-sandbox kernelspec")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--prefix", help="install under PREFIX/share/jupyter/kernels (default: sys.prefix)")
    where.add_argument("--user", action="store_true", help="install into the user's Jupyter data directory")
    inst.add_argument("--name", default=None, help="kernelspec name (default: qwenkit-sandbox)")
    inst.add_argument("--python", default=None,
                      help="the Python with qwenkit that runs the launcher (default: this one); for a kernelspec "
                           "built for another host or image")
    launch = sub.add_parser("launch", help="start one sandboxed kernel (run by the kernelspec)")
    launch.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args(argv)

    if args.command == "install":
        from qwenkit.sandbox.kernelspec import KERNEL_NAME, install

        path = install(args.prefix, user=args.user, name=args.name or KERNEL_NAME, python=args.python)
        print(f"installed kernelspec {args.name or KERNEL_NAME!r} in {path}")
        return 0
    import os

    from qwenkit.errors import QwenkitError
    from qwenkit.sandbox.kernelspec.launcher import launch as run_kernel

    try:
        code = run_kernel(args.connection_file)
    except QwenkitError as err:  # no sandbox on this host, say: one line in the gateway's log, no kernel
        print(f"qwenkit-sandbox: {err}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: the ZeroMQ proxy threads hold their sockets, and ending their context
    # politely could wait for them forever.
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    sys.exit(main())
