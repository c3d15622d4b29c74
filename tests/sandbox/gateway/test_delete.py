"""Deleting a gateway kernel survives the gateway failing the DELETE for a while (no kernel left running).

jupyter_server answers 500 to a DELETE that lands while its restarter restarts a crashed kernel, and keeps the
kernel; a stub server here plays that gateway, failing a given number of DELETEs before it deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import cast

import pytest

from qwenkit.sandbox.gateway.endpoint import GatewayEndpoint
from qwenkit.sandbox.gateway.kernel import GatewayKernel, delete_kernel, delete_kernel_sync
from tests.sandbox.gateway.server import QuietHandler, serving


class _FlakyGateway(ThreadingHTTPServer):
    failures = 0  # DELETEs to fail with `status` before one succeeds
    status = 500
    deletes: list[str]


class _Handler(QuietHandler):
    def do_DELETE(self) -> None:
        server = cast(_FlakyGateway, self.server)
        server.deletes.append(self.path)
        failed = len(server.deletes) <= server.failures
        self.reply(server.status if failed else 204, b'{"message": "Exception is not set."}' if failed else b"")


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[_FlakyGateway]:
    monkeypatch.setattr("qwenkit.sandbox.gateway.kernel._DELETE_RETRY_DELAYS", (0.01, 0.02, 0.03, 0.04))
    server = _FlakyGateway(("127.0.0.1", 0), _Handler)
    server.deletes = []
    with serving(server):
        yield server


def _endpoint(server: _FlakyGateway) -> GatewayEndpoint:
    return GatewayEndpoint.make(f"http://127.0.0.1:{server.server_address[1]}", "t")


async def test_a_delete_the_gateway_fails_is_retried_until_it_succeeds(gateway: _FlakyGateway) -> None:
    gateway.failures = 2
    assert await delete_kernel(_endpoint(gateway), "k1", 5.0)
    assert gateway.deletes == ["/api/kernels/k1"] * 3


@pytest.mark.parametrize("status", [409, 429, 503])
async def test_other_transient_answers_are_retried_too(gateway: _FlakyGateway, status: int) -> None:
    gateway.failures, gateway.status = 1, status
    assert await delete_kernel(_endpoint(gateway), "k1", 5.0)
    assert len(gateway.deletes) == 2


async def test_a_gateway_that_never_deletes_is_given_up_on_with_a_warning(
    gateway: _FlakyGateway, caplog: pytest.LogCaptureFixture,
) -> None:
    gateway.failures = 100
    with caplog.at_level(logging.WARNING, logger="qwenkit"):
        assert not await delete_kernel(_endpoint(gateway), "k1", 5.0)
    assert len(gateway.deletes) == 5  # the first try and four retries (about 4 s without the patch)
    assert "did not delete kernel k1 (HTTP 500)" in caplog.text


async def test_a_404_means_already_gone_and_is_not_retried(gateway: _FlakyGateway) -> None:
    gateway.failures, gateway.status = 1, 404
    assert await delete_kernel(_endpoint(gateway), "k1", 5.0)
    assert len(gateway.deletes) == 1


async def test_closing_a_kernel_retries_its_delete(gateway: _FlakyGateway) -> None:
    gateway.failures = 1
    kernel = GatewayKernel(_endpoint(gateway), "k2", "/work", request_timeout=5.0)
    await kernel.close()
    await kernel.close()  # idempotent: no second round of DELETEs
    assert gateway.deletes == ["/api/kernels/k2"] * 2


def test_the_finaliser_path_retries_once(gateway: _FlakyGateway) -> None:
    gateway.failures = 1
    assert delete_kernel_sync(_endpoint(gateway), "k3", 3.0)
    gateway.deletes.clear()
    gateway.failures = 100
    assert not delete_kernel_sync(_endpoint(gateway), "k3", 3.0)
    assert len(gateway.deletes) == 2
    kernel = GatewayKernel(_endpoint(gateway), "k4", "/work", request_timeout=5.0)
    gateway.deletes.clear()
    gateway.failures = 1
    kernel.kill_now()
    assert gateway.deletes == ["/api/kernels/k4"] * 2
