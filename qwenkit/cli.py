"""The `qwenkit` command: run and chat with an agent; other subcommands come from their own modules.

Each subcommand module exposes ``register(subparsers)`` that adds its parser and sets ``handler`` (a
function of the parsed args returning an exit code). Errors the user can fix are raised as
`ConfigError` or `ModelError` and printed as one line with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from qwenkit.errors import ConfigError, ModelError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line with exit code 2 (argparse prints usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"qwenkit: error: {message} (see '{self.prog} --help')\n")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options that pick the model server; defaults come from QWENKIT_* environment variables."""
    p.add_argument("--base-url", default=os.environ.get("QWENKIT_BASE_URL"),
                   help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (env QWENKIT_BASE_URL)")
    p.add_argument("--model", default=os.environ.get("QWENKIT_MODEL"),
                   help="model name on that server (env QWENKIT_MODEL)")
    p.add_argument("--api-key", default=os.environ.get("QWENKIT_API_KEY", "EMPTY"),
                   help="API key (env QWENKIT_API_KEY)")


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report what this machine supports: the interpreter sandbox and the embedded llama.cpp backend."""
    from qwenkit.llm.doctor import check_llama_cpp
    from qwenkit.sandbox.doctor import doctor_report

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


def _register_doctor(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("doctor", help="check the sandbox (bubblewrap) and the embedded llama.cpp build")
    p.add_argument("--probe", action="store_true", help="also start an isolated kernel and run 1+1 in it")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_doctor)


def _subcommand_modules() -> list[Callable[[argparse._SubParsersAction[_Parser]], None]]:
    # Imported here so `qwenkit --help` stays fast and a broken optional part cannot break the rest.
    from qwenkit.agents.cli import register as register_agent
    from qwenkit.bench.cli import register as register_bench
    from qwenkit.llm.store_cli import register as register_models

    return [register_agent, register_models, register_bench, _register_doctor]


def build_parser() -> _Parser:
    """Build the argument parser with every subcommand."""
    parser = _Parser(prog="qwenkit", description="Agents and tool calling for Qwen chat models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for register in _subcommand_modules():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qwenkit`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (ConfigError, ModelError) as exc:
        print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130


def print_error(message: str) -> None:
    """Print ``message`` as one ``qwenkit: error:`` line on stderr (never wrapped)."""
    one_line = " ".join(message.split())
    print(f"qwenkit: error: {one_line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
