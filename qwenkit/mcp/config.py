"""Read MCP server settings: the ``mcpServers`` JSON that Claude Desktop and Qwen-Agent use, and CLI strings.

The file shape::

    {"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
        "search": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer ..."}},
        "old": {"url": "http://127.0.0.1:9000/sse", "type": "sse"}
    }}

Beside the standard keys, qwenkit reads ``prefix`` (prepended to the server's tool names), ``timeout``
(seconds per call) and ``disabled`` (skip the server), the latter as Cline and others write it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qwenkit.errors import ConfigError
from qwenkit.mcp.client import HttpChoice, MCPServer

MAX_CONFIG_BYTES = 1024 * 1024
"""Largest configuration file read."""

_HTTP_KINDS: dict[str, HttpChoice] = {
    "sse": "sse", "streamable-http": "streamable-http", "streamable_http": "streamable-http",
    "streamablehttp": "streamable-http", "http": "streamable-http", "auto": "auto",
}


class _ServerEntry(BaseModel):
    """One entry of ``mcpServers``; unknown keys (other clients' settings) are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    type: str | None = Field(default=None, alias="type")
    transport: str | None = None
    prefix: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    disabled: bool = False

    @field_validator("env", mode="before")
    @classmethod
    def _env_as_text(cls, value: Any) -> Any:
        # JSON configs often write numbers or booleans for environment values; the process gets text.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value


def _server(name: str, raw: Any, where: str) -> MCPServer | None:
    try:
        entry = _ServerEntry.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(entry)"
        raise ConfigError(f"{where}: MCP server {name!r}: {loc}: {first['msg']}") from None
    if entry.disabled:
        return None
    options: dict[str, Any] = {"name": name, "prefix": entry.prefix}
    if entry.timeout is not None:
        options["timeout"] = entry.timeout
    if entry.command and entry.url:
        raise ConfigError(f"{where}: MCP server {name!r} has both 'command' and 'url'; give one")
    if entry.command:
        return MCPServer.stdio(entry.command, entry.args, entry.env, cwd=entry.cwd, **options)
    if entry.url:
        # No type: try streamable HTTP, then SSE (Claude Desktop's files mean the first, Qwen-Agent's the second).
        raw_kind = (entry.type or entry.transport or "auto").lower()
        kind = _HTTP_KINDS.get(raw_kind)
        if kind is None:
            raise ConfigError(f"{where}: MCP server {name!r} has an unknown type {raw_kind!r}; use 'sse' or "
                              "'streamable-http'")
        return MCPServer.http(entry.url, entry.headers, transport=kind, **options)
    raise ConfigError(f"{where}: MCP server {name!r} needs a 'command' (local server) or a 'url' (remote server)")


def load_mcp_config(source: str | Path | Mapping[str, Any]) -> list[MCPServer]:
    """Read MCP servers from an ``mcpServers`` JSON file (a path) or an already parsed mapping.

    Nothing is started: each server starts when used (``async with server:`` or `MCPServer.tools`).

    Raises:
        ConfigError: The file is missing, not JSON, or an entry is malformed; the message names the entry.
    """
    if isinstance(source, Mapping):
        data: Any = source
        where = "MCP configuration"
    else:
        path = Path(source)
        where = str(path)
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as err:
            raise ConfigError(f"cannot read the MCP configuration {where}: {err.strerror or err}") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"the MCP configuration {where} is larger than {MAX_CONFIG_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"the MCP configuration {where} is not valid JSON: {err}") from None
    servers = data.get("mcpServers") if isinstance(data, Mapping) else None
    if not isinstance(servers, Mapping):
        raise ConfigError(f'{where}: expected an object with an "mcpServers" object of named servers')
    found = [_server(str(name), entry, where) for name, entry in servers.items()]
    return [s for s in found if s is not None]


def server_from_text(text: str, *, name: str | None = None) -> MCPServer:
    """One server from a command line (``"uvx mcp-server-time --local-timezone UTC"``) or a URL.

    Raises:
        ConfigError: The text is empty or cannot be split like a shell command line.
    """
    text = text.strip()
    if text.startswith(("http://", "https://")):
        return MCPServer.http(text, name=name)
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise ConfigError(f"cannot read the MCP server command {text[:80]!r}: {err}") from None
    if not words:
        raise ConfigError("an MCP server command cannot be empty")
    default_name = Path(words[0]).name + (f" {words[1]}" if words[1:] else "")
    return MCPServer.stdio(words[0], words[1:], name=name or default_name)


def servers_from_cli(mcp: list[str], mcp_config: str | None) -> list[MCPServer]:
    """The servers named on a command line: each ``--mcp`` string, then those of an ``--mcp-config`` file.

    Names are made unique (``name#2``) so messages tell the servers apart.

    Raises:
        ConfigError: A command or the configuration is malformed.
    """
    servers = [server_from_text(text) for text in mcp]
    if mcp_config:
        servers.extend(load_mcp_config(mcp_config))
    seen: dict[str, int] = {}
    for server in servers:
        count = seen[server.name] = seen.get(server.name, 0) + 1
        if count > 1:
            server.name = f"{server.name}#{count}"
    return servers
