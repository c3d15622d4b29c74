"""`MCPServer` against a real MCP server process (the SDK's MCPServer/FastMCP), over stdio and streamable HTTP,
driven by a qwenkit `Agent` with a scripted model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qwenkit import Agent
from qwenkit.errors import ConfigError
from qwenkit.mcp import MCPServer, MCPServerError, MCPTool, gather_tools
from qwenkit.testing import ScriptedModel
from qwenkit.types import ToolMessage
from tests.mcp import servers
from tests.mcp.conftest import HttpServer, start_http, stop

pytestmark = pytest.mark.timeout(60)


def call(name: str, arguments: dict) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


def observations(messages: list) -> list[str]:
    return [m.content for m in messages if isinstance(m, ToolMessage)]


def stdio_server(script: Path, log: Path, **options) -> MCPServer:
    return MCPServer.stdio(servers.PYTHON, [str(script)], {"QK_TEST_LOG": str(log)}, **options)


@contextlib.asynccontextmanager
async def started(group: list[MCPServer]) -> AsyncIterator[None]:
    """Start servers concurrently (each start is a process launch) and close them all at the end."""
    try:
        await asyncio.gather(*(s.start() for s in group))
        yield
    finally:
        await asyncio.gather(*(s.aclose() for s in group))


def wait_for_line(log: Path, line: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and line in log.read_text().splitlines():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_agent_calls_text_image_error_and_slow_tools(
    transport: str, request: pytest.FixtureRequest, fastmcp_script: Path, server_log: Path
) -> None:
    if transport == "stdio":
        server = stdio_server(fastmcp_script, server_log, name="test", timeout=1.5)
    else:
        remote: HttpServer = request.getfixturevalue("http_server")
        server, server_log = MCPServer.http(remote.url, name="test", timeout=1.5), remote.log
    model = ScriptedModel([
        call("echo", {"text": "hi", "times": 3}),
        call("picture", {}),
        call("fail", {"reason": "testing"}),
        call("sleepy", {"seconds": 30}),
        "All done.",
    ])
    async with server:
        tools = await server.tools()
        assert {t.name for t in tools} == {"echo", "picture", "fail", "sleepy", "crash"}
        echo = next(t for t in tools if t.name == "echo")
        assert echo.spec.parameters["properties"]["text"]["type"] == "string"
        assert echo.spec.description == "Repeat text."
        started = time.monotonic()
        result = await Agent(model, tools=tools, format="nous", max_steps=6).arun("go")
        elapsed = time.monotonic() - started
    assert result.status == "completed", result.error
    assert result.answer == "All done."
    texts = observations(result.messages)
    assert texts[0] == "hi hi hi"
    image_path = Path(texts[1].split("](", 1)[1].rstrip(")"))
    assert texts[1].startswith("![image-1](")
    # The image was kept as a file while the server was open (the temporary folder is removed by aclose).
    assert "failed on purpose: testing" in texts[2]
    assert "did not finish within 1.5 s" in texts[3] and "cancelled" in texts[3]
    assert elapsed < 25  # the 30 s sleep was abandoned, not waited for
    # The server saw the MCP cancellation and stopped the tool.
    assert wait_for_line(server_log, "sleepy cancelled"), server_log.read_text() if server_log.exists() else ""
    assert "sleepy finished" not in server_log.read_text()
    assert not image_path.exists()


async def test_image_files_and_error_flags(fastmcp_script: Path, server_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "images"
    async with stdio_server(fastmcp_script, server_log, outputs_dir=out) as server:
        picture = await server.call("picture", {})
        failed = await server.call("fail", {"reason": "x"})
        echoed = await server.call("echo", {"text": "a"})
    assert len(picture.images) == 1
    assert Path(picture.images[0]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert Path(picture.images[0]).parent == out
    assert failed.is_error and "failed on purpose" in failed.text
    assert not echoed.is_error and echoed.text == "a"


async def test_arguments_are_checked_against_the_servers_schema(fastmcp_script: Path, server_log: Path) -> None:
    model = ScriptedModel([call("echo", {"times": "many"}), "ok"])
    async with stdio_server(fastmcp_script, server_log) as server:
        result = await Agent(model, tools=await server.tools(), format="nous").arun("go")
    text = observations(result.messages)[0]
    assert "invalid arguments for echo" in text
    assert "'text' is a required property" in text
    assert "times" in text  # "many" is not an integer


async def test_prefix_and_duplicate_names(fastmcp_script: Path, server_log: Path) -> None:
    a = stdio_server(fastmcp_script, server_log, name="first")
    b = stdio_server(fastmcp_script, server_log, name="second")
    c = stdio_server(fastmcp_script, server_log, name="third", prefix="t")
    async with started([a, b, c]):
        with pytest.raises(ConfigError, match="'first' and 'second' both have a tool named 'echo'"):
            await gather_tools([a, b])
        tools = await gather_tools([a, c])
        names = {t.name for t in tools}
        assert {"echo", "t_echo", "t_picture"} <= names
        prefixed = next(t for t in tools if t.name == "t_echo")
        model = ScriptedModel([call("t_echo", {"text": "via prefix"}), "done"])
        result = await Agent(model, tools=tools, format="nous").arun("go")
    assert observations(result.messages) == ["via prefix"]
    assert isinstance(prefixed, MCPTool) and prefixed.remote_name == "echo"


async def test_server_that_dies_mid_run(fastmcp_script: Path, server_log: Path) -> None:
    model = ScriptedModel([call("crash", {}), call("echo", {"text": "again"}), "never"])
    async with stdio_server(fastmcp_script, server_log, name="fragile") as server:
        agent = Agent(model, tools=await server.tools(), format="nous", max_steps=4)
        started = time.monotonic()
        with pytest.raises(MCPServerError, match="'fragile' is not running"):
            await agent.arun("go")
        assert time.monotonic() - started < 20
        # The crash itself reached the model as an observation.
        crash_obs = model.requests[1].messages[-1].content
        assert "stopped while running crash" in crash_obs
        with pytest.raises(MCPServerError, match="'fragile'"):
            await server.call("echo", {"text": "x"})


async def test_http_server_that_goes_away(http_process: HttpServer) -> None:
    async with MCPServer.http(http_process.url, name="remote", timeout=5) as server:
        assert (await server.call("echo", {"text": "up"})).text == "up"
        http_process.process.kill()
        http_process.process.wait(timeout=10)
        started = time.monotonic()
        out = await server.call("echo", {"text": "down"})
        assert out.is_error and "'remote' stopped while running echo" in out.text
        with pytest.raises(MCPServerError, match="'remote' is not running"):
            await server.call("echo", {"text": "again"})
        assert time.monotonic() - started < 15


async def test_sse_server(tmp_path: Path) -> None:
    remote = start_http(tmp_path, "sse")
    try:
        model = ScriptedModel([call("echo", {"text": "over sse"}), call("picture", {}), "done"])
        async with MCPServer.http(remote.url, transport="sse", name="old") as server:
            result = await Agent(model, tools=await server.tools(), format="nous").arun("go")
        texts = observations(result.messages)
        assert texts[0] == "over sse" and texts[1].startswith("![image-1](")
        # Without a transport, streamable HTTP is tried first and SSE next.
        async with MCPServer.http(remote.url, name="guess") as guessed:
            assert (await guessed.call("echo", {"text": "found"})).text == "found"
    finally:
        stop(remote.process)


async def test_http_server_that_is_not_there() -> None:
    server = MCPServer.http(f"http://127.0.0.1:{servers.free_port()}/mcp", name="nobody", start_timeout=10)
    with pytest.raises(MCPServerError, match=r"'nobody' .*could not be started: streamable-http: ConnectError.*; sse:"):
        await server.start()


async def test_server_can_be_closed_from_another_task(fastmcp_script: Path, server_log: Path) -> None:
    server = stdio_server(fastmcp_script, server_log)
    await asyncio.create_task(server.start())
    assert (await server.call("echo", {"text": "x"})).text == "x"
    await asyncio.create_task(server.aclose())
    assert not server.running
    with pytest.raises(MCPServerError, match="not started"):
        await server.call("echo", {"text": "x"})
    async with server:  # and started again
        assert (await server.call("echo", {"text": "y"})).text == "y"


async def test_an_mcp_server_given_to_the_agent_starts_and_stops_with_it(fastmcp_script: Path,
                                                                         server_log: Path) -> None:
    server = stdio_server(fastmcp_script, server_log, name="test", prefix="t")
    model = ScriptedModel([call("t_echo", {"text": "hey"}), "ok"])
    async with Agent(model, tools=[server]) as agent:  # a toolset: listed on the first run
        result = await agent.arun("go")
        assert observations(result.messages) == ["hey"]
        assert server.running
    assert not server.running  # closed with the agent
