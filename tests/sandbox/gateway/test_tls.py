"""A gateway behind TLS (``https://``): the certificate is checked, and kernels work once it is trusted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qwenkit.errors import ConfigError
from qwenkit.sandbox import KernelSession, SessionConfig
from qwenkit.sandbox.gateway import GatewayProvider, gateway_report
from tests.sandbox.gateway.server import TOKEN, GatewayServer

pytestmark = [pytest.mark.sandbox, pytest.mark.gateway]


async def test_https_gateway_checks_its_certificate(make_gateway: Callable[..., GatewayServer]) -> None:
    server = make_gateway(tls=True)
    assert server.url.startswith("https://")
    # Self-signed: not trusted by default, and said so in one line.
    with pytest.raises(ConfigError) as info:
        await GatewayProvider(server.url, TOKEN).check()
    assert str(info.value).startswith(f"the TLS connection to the kernel gateway at {server.url} failed (")
    assert "\n" not in str(info.value)
    # Trusted through a CA bundle: REST and the wss:// channel both work.
    provider = GatewayProvider(server.url, TOKEN, verify=str(server.cert))
    report = await provider.check()
    assert report.sandboxed
    async with KernelSession(SessionConfig(timeout=30), source=provider) as s:
        await s.execute("q = 6")
        r = await s.execute("q * 7")
        assert r.ok and r.result == "42"
    assert gateway_report(server.url, TOKEN).error == str(info.value)
    assert gateway_report(server.url, TOKEN, verify=str(server.cert)).ok
