"""MCP servers that do not work: a missing command, one that exits at once, one that speaks garbage, one that
lists broken tools, and malformed configuration."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from qwenkit.errors import ConfigError
from qwenkit.mcp import MCPServer, MCPServerError, load_mcp_config, servers_from_cli
from tests.mcp import servers

pytestmark = pytest.mark.timeout(60)


async def test_missing_command() -> None:
    server = MCPServer.stdio("qwenkit-no-such-mcp-server", ["--x"], name="ghost")
    with pytest.raises(MCPServerError, match=r"MCP server 'ghost' .*could not be started: the command was not found"):
        await server.start()
    assert not server.running


async def test_server_that_exits_at_once(tmp_path: Path) -> None:
    script = servers.write(tmp_path, "exits.py", servers.EXITS_SERVER)
    server = MCPServer.stdio(servers.PYTHON, [str(script)], name="quitter")
    started = time.monotonic()
    with pytest.raises(MCPServerError) as info:
        await server.start()
    message = str(info.value)
    assert "'quitter'" in message and "could not be started" in message
    assert "exited" in message
    assert "fatal: missing API key" in message  # its stderr tells the user why
    assert time.monotonic() - started < 20


async def test_server_that_speaks_garbage(tmp_path: Path) -> None:
    script = servers.write(tmp_path, "garbage.py", servers.GARBAGE_SERVER)
    server = MCPServer.stdio(servers.PYTHON, [str(script)], name="babbler", start_timeout=5)
    started = time.monotonic()
    with pytest.raises(MCPServerError) as info:
        await server.start()
    message = str(info.value)
    assert "'babbler'" in message
    assert "not MCP: 'this is not json-rpc'" in message
    assert "garbage server wrote nonsense" in message
    assert time.monotonic() - started < 25  # the start timeout plus the SDK's bounded kill of the process


async def test_tools_with_invalid_schema_or_name_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script = servers.write(tmp_path, "bad_listing.py", servers.BAD_LISTING_SERVER)
    caplog.set_level(logging.WARNING, logger="qwenkit.mcp")
    async with MCPServer.stdio(servers.PYTHON, [str(script)], name="sloppy") as server:
        tools = await server.tools()
        assert [t.name for t in tools] == ["good"]
        assert (await server.call("good", {"x": 4})).text == "x=4"
    warnings = "\n".join(r.getMessage() for r in caplog.records)
    assert "'sloppy': skipping tool 'broken_schema': its input schema is not valid JSON Schema" in warnings
    assert "skipping tool 'not an ok name'" in warnings
    assert "skipping tool 'good': listed twice" in warnings


def test_load_config_reads_the_mcpservers_shape(tmp_path: Path) -> None:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC", "N": 3}},
        "remote": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer x"}, "prefix": "r",
                   "timeout": 5},
        "old": {"url": "http://127.0.0.1:9/sse", "type": "sse"},
        "off": {"command": "nothing", "disabled": True},
    }}))
    time_server, remote, old = load_mcp_config(path)
    assert time_server.name == "time"
    assert time_server.transport.describe() == "uvx mcp-server-time"
    assert dict(time_server.transport.env or {}) == {"TZ": "UTC", "N": "3"}  # type: ignore[union-attr]
    assert remote.prefix == "r" and remote.timeout == 5
    assert remote.transport.kind == "auto"  # type: ignore[union-attr]  # no type: streamable HTTP, then SSE
    assert remote.transport.headers == {"Authorization": "Bearer x"}  # type: ignore[union-attr]
    assert old.transport.kind == "sse"  # type: ignore[union-attr]
    assert [s.name for s in load_mcp_config({"mcpServers": {}})] == []


@pytest.mark.parametrize(("config", "message"), [
    ({"servers": {}}, '"mcpServers"'),
    ({"mcpServers": {"a": {}}}, "'a' needs a 'command'"),
    ({"mcpServers": {"a": {"command": "x", "url": "http://127.0.0.1/"}}}, "'a' has both"),
    ({"mcpServers": {"a": {"command": "x", "args": "not-a-list"}}}, "'a': args"),
    ({"mcpServers": {"a": {"url": "ftp://x"}}}, "http:// or https://"),
    ({"mcpServers": {"a": {"url": "http://127.0.0.1/", "type": "carrier-pigeon"}}}, "unknown type 'carrier-pigeon'"),
    ({"mcpServers": {"a": {"command": "x", "timeout": -1}}}, "'a': timeout"),
])
def test_bad_config(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_mcp_config(config)


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the MCP configuration"):
        load_mcp_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json is not valid JSON"):
        load_mcp_config(bad)


def test_servers_from_cli(tmp_path: Path) -> None:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": {"fs": {"command": "npx", "args": ["-y", "fs-server"]}}}))
    found = servers_from_cli(["uvx mcp-server-time --local-timezone 'Europe/Paris'", "uvx mcp-server-time",
                              "http://127.0.0.1:8000/mcp"], str(path))
    assert [s.name for s in found] == ["uvx mcp-server-time", "uvx mcp-server-time#2", "http://127.0.0.1:8000/mcp",
                                       "fs"]
    assert found[0].transport.args == ("mcp-server-time", "--local-timezone", "Europe/Paris")  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="cannot be empty"):
        servers_from_cli(["  "], None)
    with pytest.raises(ConfigError, match="cannot read the MCP server command"):
        servers_from_cli(["uvx 'unclosed"], None)
