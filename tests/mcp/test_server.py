"""``qwenkit mcp serve`` driven by the ``mcp`` SDK's own client, over stdio and streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from qwenkit.mcp.cli import main
from tests.mcp import servers

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
SERVE = [servers.PYTHON, "-m", "qwenkit.mcp", "serve", "--tool", "code_interpreter", "--tool", "calculator",
         "--timeout", "4"]


def stdio_params() -> StdioServerParameters:
    return StdioServerParameters(command=SERVE[0], args=SERVE[1:], cwd=str(ROOT))


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``qwenkit mcp serve --transport http`` on a free port of 127.0.0.1, shared by the module's tests (each
    opens its own MCP sessions); stopped at the end."""
    port = servers.free_port()
    with (tmp_path_factory.mktemp("serve") / "serve.err").open("w") as err:
        proc = subprocess.Popen([*SERVE, "--transport", "http", "--port", str(port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        servers.wait_for_http(f"http://127.0.0.1:{port}/mcp", proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@asynccontextmanager
async def connect(target: str | StdioServerParameters) -> AsyncIterator[Client]:
    async with Client(target, read_timeout_seconds=60) as client:
        yield client


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def run(client: Client, code: str) -> types.CallToolResult:
    return await client.call_tool("code_interpreter", {"code": code})


@pytest.fixture(params=["stdio", "http"])
def target(request: pytest.FixtureRequest) -> str | StdioServerParameters:
    return stdio_params() if request.param == "stdio" else request.getfixturevalue("http_url")


async def test_lists_tools_and_calculates(target: str | StdioServerParameters) -> None:
    async with connect(target) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) == {"code_interpreter", "calculator"}
        assert listed["code_interpreter"].input_schema["required"] == ["code"]
        assert "expression" in listed["calculator"].input_schema["properties"]
        ok = await client.call_tool("calculator", {"expression": "factorial(5) + 2**10"})
        assert not ok.is_error and text_of(ok) == "1144"
        bad = await client.call_tool("calculator", {"expression": "1/0"})
        assert bad.is_error and "division by zero" in text_of(bad)
        missing = await client.call_tool("calculator", {})
        assert missing.is_error and "invalid arguments for calculator" in text_of(missing)
        with pytest.raises(MCPError, match="unknown tool 'nope'"):
            await client.call_tool("nope", {})


@pytest.mark.sandbox
async def test_code_state_plot_and_timeout_over_stdio() -> None:
    async with connect(stdio_params()) as client:
        first = await run(client, "x = 21\nprint('set')")
        assert not first.is_error and "set" in text_of(first)
        second = await run(client, "print(x * 2)")
        assert "42" in text_of(second)  # the same kernel: state kept between calls
        plot = await run(client, "import matplotlib.pyplot as plt\n"
                                 "plt.plot([1, 2, 3], [1, 4, 9])\nplt.show()")
        images = [b for b in plot.content if isinstance(b, types.ImageContent)]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data).startswith(b"\x89PNG\r\n\x1a\n")
        slow = await run(client, "import time\ntime.sleep(60)")
        assert slow.is_error and "interrupted after 4 s" in text_of(slow)
        after = await run(client, "print(x + 1)")
        assert "22" in text_of(after)  # interrupted, not restarted: the state survived


@pytest.mark.sandbox
async def test_http_sessions_each_have_their_own_kernel(http_url: str) -> None:
    async with connect(http_url) as a, connect(http_url) as b:
        await run(a, "secret = 'only in a'")
        seen_by_b = await run(b, "print('secret' in globals())")
        assert "False" in text_of(seen_by_b)
        await run(b, "secret = 'b has its own'")
        kept = await run(a, "print(secret)")
        assert "only in a" in text_of(kept)
        plot = await run(a, "import matplotlib.pyplot as plt\n"
                            "plt.plot([0, 1]); plt.show()")
        assert any(isinstance(blk, types.ImageContent) for blk in plot.content)


async def test_modern_clients_fall_back_to_sessions_over_http(http_url: str) -> None:
    # The default client probes the 2026-07-28 protocol first; the server steers it to the handshake so that the
    # connection has a session (and so a kernel of its own).
    async with connect(http_url) as client:
        assert client.protocol_version < "2026"
        ok = await client.call_tool("calculator", {"expression": "2+2"})
        assert text_of(ok) == "4"
    async with Client(http_url, mode="2026-07-28") as pinned:
        with pytest.raises(MCPError, match="keeps state per MCP session"):
            await pinned.call_tool("calculator", {"expression": "2+2"})


def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--tool", "teleporter"]) == 2
    assert "unknown tool 'teleporter'" in capsys.readouterr().err
    for bad in (["--timeout", "0"], ["--transport", "carrier-pigeon"], ["--port", "70000"], ["--path", "mcp"]):
        with pytest.raises(SystemExit) as info:
            main(["serve", *bad])
        assert info.value.code == 2


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run([servers.PYTHON, "-m", "qwenkit.mcp", "serve", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "--transport" in done.stdout
