"""``qwenkit mcp serve``: expose qwenkit's built-in tools to any MCP client.

Usable on its own as ``python -m qwenkit.mcp serve ...``; the ``qwenkit`` CLI calls `main` for ``qwenkit mcp``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys

from qwenkit.errors import QwenkitError

DEFAULT_TOOLS = ("code_interpreter", "calculator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwenkit mcp", description="Model Context Protocol tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve qwenkit tools over MCP (stdio or streamable HTTP)")
    serve.add_argument("--tool", action="append", dest="tools", metavar="NAME",
                       help=f"a built-in tool to serve; repeat for several (default: {', '.join(DEFAULT_TOOLS)})")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                       help="stdio (the client starts this command) or http (streamable HTTP; default: stdio)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind with --transport http (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port with --transport http (default: 8000)")
    serve.add_argument("--path", default="/mcp", help="endpoint path with --transport http (default: /mcp)")
    serve.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="seconds each call may run before it is interrupted (default: each tool's own)")
    serve.add_argument("--max-sessions", type=int, default=16,
                       help="most MCP sessions at once with --transport http, each with its own kernel (default: 16)")
    return parser


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    if args.max_sessions < 1:
        parser.error("--max-sessions must be at least 1")
    if not args.path.startswith("/"):
        parser.error("--path must start with '/'")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run ``qwenkit mcp ...``; returns the exit code (2 for a configuration error)."""
    from qwenkit.mcp.server import ToolServer, make_tools, serve_http, serve_stdio

    parser = _parser()
    args = parser.parse_args(argv)
    _check(args, parser)
    try:
        tools = make_tools(args.tools or DEFAULT_TOOLS, timeout=args.timeout)
        server = ToolServer(tools, transport=args.transport, timeout=args.timeout)
    except QwenkitError as err:
        print(f"qwenkit mcp: error: {err} (--tool)", file=sys.stderr)
        return 2
    names = ", ".join(server.registry.names)
    try:
        if args.transport == "stdio":
            asyncio.run(serve_stdio(server))
        else:
            if not _is_loopback(args.host):
                print(f"qwenkit mcp: warning: binding {args.host}: anyone who can reach this port can use the tools "
                      f"({names})", file=sys.stderr)
            print(f"qwenkit mcp: serving {names} at http://{args.host}:{args.port}{args.path}", file=sys.stderr)
            asyncio.run(serve_http(server, host=args.host, port=args.port, path=args.path,
                                   max_sessions=args.max_sessions))
    except KeyboardInterrupt:
        return 130
    except OSError as err:  # the port is taken, the address cannot be bound
        print(f"qwenkit mcp: error: {err}", file=sys.stderr)
        return 2
    return 0
