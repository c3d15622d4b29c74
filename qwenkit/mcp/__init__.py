"""The Model Context Protocol, both ways, with the official ``mcp`` SDK.

- Client: `MCPServer` takes tools from any MCP server (a local command over stdio, or a URL)::

      async with MCPServer.stdio("uvx", ["mcp-server-time"], prefix="time") as server:
          agent = Agent(model, tools=await server.tools())

  `load_mcp_config` reads the ``mcpServers`` JSON of Claude Desktop and Qwen-Agent; `servers_from_cli` reads the
  CLI's ``--mcp`` and ``--mcp-config``; `gather_tools` lists several servers' tools and refuses clashing names.
- Server: ``qwenkit mcp serve`` (`qwenkit.mcp.cli`) offers qwenkit's tools, above all the sandboxed code
  interpreter, to any MCP client (`qwenkit.mcp.server.ToolServer`).

Names are imported on first use, so ``import qwenkit.mcp`` (and the CLI) does not load the SDK until needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwenkit.mcp.client import MCPServer, MCPServerError, gather_tools, quiet_sdk_logging, started
    from qwenkit.mcp.config import load_mcp_config, server_from_text, servers_from_cli
    from qwenkit.mcp.tool import MCPTool

_WHERE = {
    "MCPServer": "client", "MCPServerError": "client", "gather_tools": "client", "quiet_sdk_logging": "client",
    "started": "client", "load_mcp_config": "config", "server_from_text": "config", "servers_from_cli": "config",
    "MCPTool": "tool",
}

__all__ = [
    "MCPServer", "MCPServerError", "MCPTool", "gather_tools", "load_mcp_config", "quiet_sdk_logging",
    "server_from_text", "servers_from_cli", "started",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'qwenkit.mcp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qwenkit.mcp.{module}"), name)
