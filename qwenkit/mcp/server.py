"""Serve qwenkit tools over MCP, above all the sandboxed, stateful code interpreter.

Built on the ``mcp`` SDK's low-level `mcp.server.Server`, because qwenkit tools already carry their JSON schema
(`ToolSpec.parameters`); calls go through a qwenkit `ToolRegistry`, so argument validation, timeouts (the code
interpreter interrupts the cell and keeps the kernel) and error observations are exactly qwenkit's.

State: one kernel per MCP session. Over stdio a process serves one client, so the whole process is one
conversation. Over HTTP each MCP session (``Mcp-Session-Id``) is a conversation, and its kernel is killed when
the session ends (the client closes it, or it is idle past ``session_idle_timeout``). Sessions need the
initialize handshake: the 2026-07-28 protocol has no sessions, so over HTTP this server answers
``server/discover`` with the handshake-era versions only (as the Go SDK's stateful servers do), and clients
fall back to the handshake.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from qwenkit.errors import ConfigError, SandboxUnavailable
from qwenkit.tools.base import Tool, ToolContext
from qwenkit.tools.registry import ToolRegistry
from qwenkit.types import ToolCall

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("qwenkit.mcp")

Transport = Literal["stdio", "http"]

MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""Largest image file returned to the client as MCP image content."""
CLOSE_TIMEOUT_S = 30.0
"""How long ending a conversation (killing its kernel) may take."""
_STATE_KEY = "qwenkit.conversation"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".svg": "image/svg+xml", ".webp": "image/webp"}


def make_tools(names: Sequence[str], *, timeout: float | None = None) -> list[Tool]:
    """The built-in tools to serve, by name.

    The code interpreter is made here rather than by the CLI's catalog: a server's working directory may be
    anything (``/`` under a desktop app), so its images live in temporary folders removed with each session.

    Raises:
        ConfigError: A name is not a built-in tool.
    """
    from qwenkit.tools.builtin.catalog import BUILTIN_TOOLS
    from qwenkit.tools.builtin.catalog import make_tools as make_builtin

    tools: list[Tool] = []
    for name in dict.fromkeys(names):
        if name == "code_interpreter":
            from qwenkit.tools.builtin.code_interpreter import CodeInterpreter

            tools.append(CodeInterpreter(timeout=timeout))
        elif name in BUILTIN_TOOLS:
            tools.extend(make_builtin([name]))
        else:
            raise ConfigError(f"unknown tool {name!r}; built-in tools: {', '.join(sorted(BUILTIN_TOOLS))}")
    return tools


def _image_block(path: str) -> types.ImageContent | types.TextContent:
    file = Path(path)
    mime = _MIME.get(file.suffix.lower())
    try:
        size = file.stat().st_size
        if mime is None or size > MAX_IMAGE_BYTES:
            return types.TextContent(type="text", text=f"[image {file.name} not sent: unsupported or too large]")
        data = file.read_bytes()
    except OSError as err:
        return types.TextContent(type="text", text=f"[image {file.name} could not be read: {err.strerror}]")
    return types.ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime)


class ToolServer:
    """qwenkit tools behind an MCP server.

    Args:
        tools: The tools to serve (their names must be unique).
        transport: ``"stdio"`` (one client, one conversation) or ``"http"`` (one conversation per MCP session).
        timeout: Seconds each call may take (default: each tool's own; the code interpreter interrupts its cell
            at the limit and keeps the kernel's state).
        name: The server name reported to clients.

    Attributes:
        server: The SDK server; run it with `serve_stdio` or `serve_http`.
    """

    def __init__(
        self, tools: Sequence[Tool], *, transport: Transport = "stdio", timeout: float | None = None,
        name: str = "qwenkit",
    ) -> None:
        try:
            self.registry = ToolRegistry(tools)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.transport = transport
        self.timeout = timeout
        self._stdio_conversation = f"mcp-stdio-{uuid.uuid4().hex[:12]}"
        self.server: Server[Any] = Server(
            name, version="0.1.0",
            instructions="Tools from qwenkit. code_interpreter keeps its Python state between calls of one session.",
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
        )
        if transport == "http":
            self.server.add_request_handler("server/discover", types.RequestParams, self._discover)

    async def _discover(
        self, ctx: ServerRequestContext[Any], params: types.RequestParams | None
    ) -> types.DiscoverResult:
        # Advertise only handshake-era versions: a 2026-07-28 client then falls back to the initialize
        # handshake, which gives each client an MCP session (and so a kernel of its own).
        version = HANDSHAKE_PROTOCOL_VERSIONS[-1]
        return types.DiscoverResult(
            supported_versions=list(HANDSHAKE_PROTOCOL_VERSIONS),
            capabilities=self.server.get_capabilities(protocol_version=version),
            instructions=self.server.instructions,
        )

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        listed = [
            types.Tool(name=s.name, title=s.human_name or None, description=s.description, input_schema=s.parameters)
            for s in self.registry.specs()
        ]
        return types.ListToolsResult(tools=listed)

    def _conversation(self, ctx: ServerRequestContext[Any]) -> str:
        """The conversation (kernel) this request belongs to; see the module docstring."""
        if self.transport == "stdio":
            return self._stdio_conversation
        # The per-connection `state` and `exit_stack` are the SDK's hooks for per-session resources; mcp 2.3
        # offers no public path from a request to its connection, hence the private attribute.
        connection = getattr(ctx.session, "_connection", None)
        session_id = getattr(connection, "session_id", None)
        if connection is None or session_id is None:
            raise MCPError(
                code=types.INVALID_REQUEST,
                message="this server keeps state per MCP session; connect with the initialize handshake "
                        f"(protocol {HANDSHAKE_PROTOCOL_VERSIONS[-1]} or earlier)",
            )
        cid = connection.state.get(_STATE_KEY)
        if cid is None:
            cid = connection.state[_STATE_KEY] = f"mcp-{session_id[:32]}"
            connection.exit_stack.push_async_callback(self._end_conversation, cid)
        return cid

    async def _end_conversation(self, cid: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.registry.close_conversation(cid)
        except Exception:
            log.exception("closing conversation %s failed", cid)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name not in self.registry:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {params.name!r}")
        cid = self._conversation(ctx)
        call = ToolCall(name=params.name, arguments=dict(params.arguments or {}))
        tool_ctx: ToolContext = ToolContext(conversation_id=cid, call_id=call.id, agent_name="mcp")
        try:
            result = await self.registry.call(call, tool_ctx, timeout=self.timeout)
        except (SandboxUnavailable, ConfigError) as err:
            # The operator must act (install bubblewrap, fix the setup); the client's user sees why.
            log.error("%s: %s", params.name, err)
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"Error: {err}")], is_error=True)
        content: list[Any] = [types.TextContent(type="text", text=result.content)]
        content.extend(_image_block(p) for p in result.images)
        return types.CallToolResult(content=content, is_error=not result.ok)

    async def aclose(self) -> None:
        """Release every tool (kill the kernels)."""
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await self.registry.aclose()


async def serve_stdio(server: ToolServer) -> None:
    """Serve on this process's stdin/stdout until the client closes them; then release the tools."""
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.server.run(read_stream, write_stream, server.server.create_initialization_options())
    finally:
        await server.aclose()


def http_server(
    server: ToolServer, *, host: str = "127.0.0.1", port: int = 8000, path: str = "/mcp",
    max_sessions: int = 16, session_idle_timeout: float = 1800.0,
) -> uvicorn.Server:
    """A uvicorn server for streamable HTTP at ``http://{host}:{port}{path}`` (not started).

    Args:
        server: What to serve.
        host: Address to bind; loopback by default (anyone who can reach the port can run code).
        port: TCP port (0: any free port).
        path: Endpoint path.
        max_sessions: Most MCP sessions (each may hold a kernel) at once.
        session_idle_timeout: Seconds after which an idle session, and its kernel, is ended.
    """
    import uvicorn

    app = server.server.streamable_http_app(
        streamable_http_path=path, host=host, max_sessions=max_sessions, session_idle_timeout=session_idle_timeout,
    )
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))


async def serve_http(server: ToolServer, **options: Any) -> None:
    """Serve streamable HTTP until interrupted (see `http_server` for the options); then release the tools."""
    try:
        await http_server(server, **options).serve()
    finally:
        await server.aclose()
