"""``qwenkit run --mcp`` / ``--mcp-config`` and ``qwenkit mcp`` through the real command line."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.llm.stub_server import Reply, ThreadedStub, chat_body
from tests.mcp import servers

pytestmark = pytest.mark.timeout(120)


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def qwenkit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")} | env
    return subprocess.run([sys.executable, "-m", "qwenkit.cli", *args], capture_output=True, text=True, timeout=90,
                          env=full, stdin=subprocess.DEVNULL)


def test_run_takes_tools_from_an_mcp_command(fastmcp_script: Path, server_log: Path) -> None:
    replies = [Reply(body=chat_body(call("echo", text="from mcp", times=2))), Reply(body=chat_body("done"))]
    with ThreadedStub(replies) as srv:
        p = qwenkit("run", "echo please", "--base-url", srv.base_url, "--model", "m", "--format", "nous",
                    # A stdio server gets a minimal environment (as the MCP SDK does): pass the log path with env(1).
                    "--mcp", shlex.join(["env", f"QK_TEST_LOG={server_log}", servers.PYTHON, str(fastmcp_script)]),
                    env={})
    assert p.returncode == 0, p.stderr
    assert "from mcp from mcp" in srv.requests[1]["messages"][-1]["content"]


def test_run_takes_tools_from_an_mcp_config_file(tmp_path: Path, fastmcp_script: Path, server_log: Path) -> None:
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {"demo": {
        "command": servers.PYTHON, "args": [str(fastmcp_script)], "env": {"QK_TEST_LOG": str(server_log)}}}}))
    replies = [Reply(body=chat_body(call("echo", text="cfg"))), Reply(body=chat_body("done"))]
    with ThreadedStub(replies) as srv:
        p = qwenkit("run", "echo", "--base-url", srv.base_url, "--model", "m", "--format", "nous",
                    "--mcp-config", str(config), env={})
    assert p.returncode == 0, p.stderr
    assert "cfg" in srv.requests[1]["messages"][-1]["content"]


def test_a_missing_mcp_command_is_one_line_exit_2() -> None:
    with ThreadedStub([Reply(body=chat_body("unused"))]) as srv:
        p = qwenkit("run", "hi", "--base-url", srv.base_url, "--model", "m", "--mcp", "no-such-mcp-server-xyz",
                    env={})
    assert p.returncode == 2, p.stderr
    assert "no-such-mcp-server-xyz" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_qwenkit_mcp_serve_help() -> None:
    p = qwenkit("mcp", "serve", "--help", env={})
    assert p.returncode == 0 and "--transport" in p.stdout
