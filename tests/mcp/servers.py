"""Sources of the MCP server processes the tests start (written to files, run with this Python).

Each is a real server built with the ``mcp`` SDK; the tests talk to it over stdio or streamable HTTP on
127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

FASTMCP_SERVER = r'''
import base64, os, sys, anyio
from mcp.server.mcpserver import MCPServer, Image
from mcp.server.mcpserver.exceptions import ToolError

LOG = os.environ["QK_TEST_LOG"]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

def record(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")

app = MCPServer("test-server", log_level="WARNING")

@app.tool()
def echo(text: str, times: int = 1) -> str:
    """Repeat text."""
    return " ".join([text] * times)

@app.tool()
def picture() -> Image:
    """A 1x1 PNG."""
    return Image(data=PNG, format="png")

@app.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"failed on purpose: {reason}")

@app.tool()
async def sleepy(seconds: float) -> str:
    """Sleeps, recording whether it was cancelled."""
    record("sleepy started")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        record("sleepy cancelled")
        raise
    record("sleepy finished")
    return "woke up"

@app.tool()
def crash() -> str:
    """Kills the server process."""
    os._exit(3)

if __name__ == "__main__":
    print("test server starting", file=sys.stderr)
    if sys.argv[1:2] == ["http"]:
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    elif sys.argv[1:2] == ["sse"]:
        app.run("sse", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run()
'''

BAD_LISTING_SERVER = r'''
import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

async def list_tools(ctx, params):
    obj = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    return types.ListToolsResult(tools=[
        types.Tool(name="good", description="fine", input_schema=obj),
        types.Tool(name="broken_schema", description="bad", input_schema={"type": "object", "properties": 5}),
        types.Tool(name="not an ok name", description="bad", input_schema=obj),
        types.Tool(name="good", description="again", input_schema=obj),
    ])

async def call_tool(ctx, params):
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"x={params.arguments['x']}")])

server = Server("bad-listing", on_list_tools=list_tools, on_call_tool=call_tool)

async def main():
    async with stdio_server() as (r, w):
        await server.run(r, w, server.create_initialization_options())

anyio.run(main)
'''

GARBAGE_SERVER = r'''
import sys, time
print("this is not json-rpc", flush=True)
print("{\"neither\": \"is this\"}", flush=True)
print("garbage server wrote nonsense", file=sys.stderr, flush=True)
time.sleep(60)
'''

EXITS_SERVER = r'''
import sys
print("fatal: missing API key", file=sys.stderr, flush=True)
sys.exit(3)
'''


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until something answers at ``url`` (any HTTP status), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url} within {timeout} s")


PYTHON = sys.executable
