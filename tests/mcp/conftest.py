"""Fixtures: the test MCP server's script, and the same server running over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mcp import servers


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("sandbox") is not None:
        from tests.sandbox.helpers import require_bubblewrap

        require_bubblewrap()


@dataclass
class HttpServer:
    """A test server process serving streamable HTTP, and the file where its tools record what happened."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_http(folder: Path, kind: str = "http") -> HttpServer:
    """Start the test server over streamable HTTP (``kind="sse"``: the older SSE transport) on a free port of
    127.0.0.1 and wait until it answers."""
    script = servers.write(folder, "fastmcp_server.py", servers.FASTMCP_SERVER)
    port = servers.free_port()
    log = folder / "server.log"
    env = {"QK_TEST_LOG": str(log), "PATH": "/usr/bin:/bin"}
    with (folder / "http.err").open("w") as err:
        proc = subprocess.Popen([servers.PYTHON, str(script), kind, str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        servers.wait_for_http(f"http://127.0.0.1:{port}/", proc)
    except BaseException:
        stop(proc)
        raise
    return HttpServer(f"http://127.0.0.1:{port}/{'sse' if kind == 'sse' else 'mcp'}", proc, log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    """The file where a stdio test server records what happened to its tools (started, cancelled...)."""
    return tmp_path / "server.log"


@pytest.fixture
def fastmcp_script(tmp_path: Path) -> Path:
    return servers.write(tmp_path, "fastmcp_server.py", servers.FASTMCP_SERVER)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """The test server over streamable HTTP, shared by a module's tests (each test opens its own session)."""
    server = start_http(tmp_path_factory.mktemp("http"))
    yield server
    stop(server.process)


@pytest.fixture
def http_process(tmp_path: Path) -> Iterator[HttpServer]:
    """A test server over streamable HTTP of the test's own (the test may kill it)."""
    server = start_http(tmp_path)
    yield server
    stop(server.process)
