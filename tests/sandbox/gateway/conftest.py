"""A kernel gateway shared by a module's tests (``gateway``), or one of a test's own (``make_gateway``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sandbox.gateway.server import GatewayServer, require_kernel_gateway
from tests.sandbox.helpers import require_bubblewrap


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    require_bubblewrap()
    require_kernel_gateway()
    server = GatewayServer(tmp_path_factory.mktemp("gateway")).start()
    try:
        yield server
        # Every kernel qwenkit started there was deleted (none left running on the gateway host).
        assert server.kernels(wait=15.0) == []
    finally:
        server.stop()


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayServer]]:
    require_bubblewrap()
    require_kernel_gateway()
    made: list[GatewayServer] = []

    def make(*, tls: bool = False) -> GatewayServer:
        server = GatewayServer(tmp_path / f"gw{len(made)}", tls=tls)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway: starts a real jupyter kernelgateway on 127.0.0.1")
