"""The `qwenkit` command: run and chat with an agent; other subcommands come from their own modules.

Each subcommand module exposes ``register(subparsers)`` that adds its parser and sets ``handler`` (a
function of the parsed args returning an exit code) and, optionally, ``check`` (a function that validates
the parsed args before anything is built, raising `ConfigError`). Every `QwenkitError` is printed as one
line with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from qwenkit._cli.args import Parser
from qwenkit._cli.output import make_stdio_safe, print_error
from qwenkit._cli.settings import add_model_options
from qwenkit.errors import ConfigError, QwenkitError

Handler = Callable[[argparse.Namespace], int]
Check = Callable[[argparse.Namespace], None]

# `add_model_options` and `print_error` stay importable from here (`qwenkit.bench.cli` imports them).
__all__ = ["add_model_options", "build_parser", "main", "parse_args", "print_error"]


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report what this machine supports: the interpreter sandbox and the embedded llama.cpp backend."""
    from qwenkit.llm.doctor import check_llama_cpp
    from qwenkit.sandbox.doctor import doctor_report

    if args.kernels:  # a gateway instead of this machine: is it there, does the token work, is it sandboxed?
        from qwenkit.sandbox.gateway import gateway_report

        report = gateway_report(args.kernels.removeprefix("gateway:"))
        for line in report.lines:
            print(line)
        if not report.ok:
            raise ConfigError(f"--kernels {args.kernels}: {report.error or 'the gateway cannot be used'}")
        return 0 if report.sandboxed else 1
    sandbox = doctor_report(probe=args.probe)
    llama = check_llama_cpp()
    if args.json:
        import json

        print(json.dumps({"sandbox": json.loads(sandbox.to_json()),
                          "llama_cpp": {"ok": llama.ok, "summary": llama.summary, "detail": llama.detail}},
                         ensure_ascii=False, indent=2))
    else:
        print(sandbox.to_text())
        print(f"embedded model backend: [{'ok' if llama.ok else 'FAIL'}] {llama.summary}")
    return 0 if sandbox.ok and llama.ok else 1


def _register_doctor(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("doctor", help="check the sandbox (bubblewrap) and the embedded llama.cpp build")
    p.add_argument("--probe", action="store_true", help="also start an isolated kernel and run 1+1 in it")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--kernels", default=None, metavar="URL",
                   help="check a Jupyter Kernel/Enterprise Gateway instead: does it answer, does the token "
                        "(QWENKIT_GATEWAY_TOKEN) work, is its kernelspec qwenkit's sandboxed one")
    p.set_defaults(handler=cmd_doctor)


def cmd_mcp(args: argparse.Namespace) -> int:
    """``qwenkit mcp ...``: the MCP server's own command line (`qwenkit.mcp.cli`)."""
    from qwenkit.mcp.cli import main as mcp_main

    return mcp_main(list(args.rest))


def _register_mcp(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("mcp", help="serve qwenkit's tools (the sandboxed code interpreter) over MCP: "
                                   "qwenkit mcp serve --help", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of 'qwenkit mcp' (serve ...)")
    p.set_defaults(handler=cmd_mcp)


def _subcommand_modules() -> list[Callable[[argparse._SubParsersAction[Parser]], None]]:
    # Imported here so `qwenkit --help` stays fast and a broken optional part cannot break the rest.
    from qwenkit.agents.cli import register as register_agent
    from qwenkit.bench.cli import register as register_bench
    from qwenkit.llm.store_cli import register as register_models
    from qwenkit.server.cli import register as register_server

    return [register_agent, register_models, register_bench, _register_doctor, _register_mcp, register_server]


def build_parser() -> Parser:
    """Build the argument parser with every subcommand."""
    parser = Parser(prog="qwenkit", description="Agents and tool calling for Qwen chat models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for register in _subcommand_modules():
        register(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None,
               ) -> argparse.Namespace:
    """Parse and validate the command line, building nothing; defaults come from ``os.environ``.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        parser: A parser from `build_parser` to reuse (default: a new one, reading the environment now).

    Raises:
        SystemExit: A flag is malformed (argparse has printed one line; the code is 2).
        QwenkitError: A value is unusable (the message names the flag or environment variable).
    """
    args = (parser or build_parser()).parse_args(argv)
    check: Check | None = getattr(args, "check", None)
    if check is not None:
        check(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qwenkit`` command; returns the exit code."""
    make_stdio_safe()
    try:
        args = parse_args(argv)
        handler: Handler = args.handler
        return handler(args)
    except QwenkitError as exc:
        print_error(str(exc) or type(exc).__name__)
        return 2
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`qwenkit run ... --json | head -1`): stop quietly, as Unix tools do. Point
        # stdout at /dev/null so the interpreter's final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
