"""``qwenkit serve``: run the agent HTTP server and its web chat with uvicorn.

`main` runs it standalone (``python -m qwenkit.server``) around an agent factory; `register` adds the
``serve`` subcommand to the ``qwenkit`` command with the same agent options as ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenkit.errors import ConfigError, QwenkitError
from qwenkit.server.settings import MiB, ServerSettings

if TYPE_CHECKING:
    from qwenkit.server.app import AgentFactory

KEY_ENV = "QWENKIT_SERVER_KEY"
"""Environment variable holding the server's API key(s), comma-separated."""


def add_server_options(p: argparse.ArgumentParser, key_flag: str = "--api-key") -> None:
    """The server's own flags (``key_flag`` is ``--server-key`` where ``--api-key`` names the model's key)."""
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1; any other needs an API key)")
    p.add_argument("--port", type=int, default=8700, help="TCP port (default: 8700)")
    p.add_argument(key_flag, dest="server_keys", action="append", default=None, metavar="KEY",
                   help=f"API key clients must send (repeatable; default: ${KEY_ENV}, comma-separated)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder for conversation transcripts (default: a temporary folder)")
    p.add_argument("--max-upload-mb", type=float, default=16.0, help="largest upload in MiB (default: 16)")


def settings_from(args: argparse.Namespace, key_flag: str = "--api-key") -> ServerSettings:
    """`ServerSettings` from the parsed flags and the environment.

    Raises:
        ConfigError: A public bind without a key, a bad port or size (the message names the flag).
    """
    keys = list(args.server_keys or [])
    if not keys:
        keys = [k.strip() for k in os.environ.get(KEY_ENV, "").split(",") if k.strip()]
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {args.port}")
    if not args.max_upload_mb > 0:
        raise ConfigError("--max-upload-mb must be positive")
    settings = ServerSettings(host=args.host, port=args.port, api_keys=tuple(keys), data_dir=args.data_dir,
                              max_upload_bytes=max(1, int(args.max_upload_mb * MiB)))
    try:
        settings.check()
    except ConfigError as err:
        raise ConfigError(f"--host {args.host}: {err} (give {key_flag} or set {KEY_ENV})") from None
    return settings


def serve(agent_factory: AgentFactory, settings: ServerSettings) -> int:
    """Run the server until Ctrl-C; returns the exit code.

    Raises:
        ConfigError: The web stack (starlette, uvicorn) is not installed.
    """
    try:  # imported here so that the ``qwenkit`` command works without the server's dependencies
        import uvicorn

        from qwenkit.server.app import create_app
    except ImportError as err:
        raise ConfigError(f"the server needs starlette and uvicorn ({err.name} is missing): "
                          "pip install 'qwenkit[server]'") from None

    app = create_app(agent_factory, settings)
    where = f"http://{settings.host}:{settings.port}/"
    print(f"qwenkit server on {where}" + (" (API key required)" if settings.requires_key else ""),
          file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=10)
    return 0


def main(argv: Sequence[str] | None = None, agent_factory: AgentFactory | None = None) -> int:
    """Run ``qwenkit serve`` with only the server's flags; returns the exit code.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
        agent_factory: Builds the agent to serve. ``None``: the embedded default model with the code
            interpreter, as ``qwenkit run`` picks without model options.
    """
    parser = argparse.ArgumentParser(prog="qwenkit serve", description="Serve an agent over HTTP, with a web chat.")
    add_server_options(parser)
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
        return serve(agent_factory or default_agent_factory(), settings)
    except QwenkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def default_agent_factory(tools: Sequence[str] = ("code_interpreter",)) -> AgentFactory:
    """An agent on the embedded default model (as ``qwenkit run`` without model options)."""

    def make() -> Any:
        from qwenkit.agents.cli import add_agent_options, make_agent

        p = argparse.ArgumentParser()
        add_agent_options(p)
        args = p.parse_args([arg for name in tools for arg in ("--tool", name)])
        return make_agent(args)

    return make


def register(sub: Any) -> None:
    """Add ``serve`` to the ``qwenkit`` command: the agent options of ``run``, plus the server's own.

    ``--api-key`` there is the model server's key (as for ``run``), so the server's key is ``--server-key``.
    """
    from qwenkit.agents.cli import add_agent_options, check_agent_args, make_agent

    p = sub.add_parser("serve", help="serve an agent over HTTP (REST + SSE, OpenAI-compatible) with a web chat")
    add_agent_options(p)
    add_server_options(p, key_flag="--server-key")

    def handler(args: argparse.Namespace) -> int:
        if not args.tool:
            args.tool = ["code_interpreter"]
        settings = settings_from(args, key_flag="--server-key")
        return serve(lambda: make_agent(args), settings)

    p.set_defaults(handler=handler, check=check_agent_args)
