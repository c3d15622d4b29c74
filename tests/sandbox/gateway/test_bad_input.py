"""Gateways that cannot be used: no answer, 401/403, not a gateway, a plain kernelspec: one clear error each."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from qwenkit.errors import ConfigError
from qwenkit.sandbox import KernelPool
from qwenkit.sandbox.gateway import GatewayProvider, gateway_report
from qwenkit.tools import ToolContext
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
from tests.sandbox.gateway.server import TOKEN, GatewayServer, QuietHandler, free_port, serving


class _NotAGateway(QuietHandler):
    def do_GET(self) -> None:
        found = self.path == "/"
        self.reply(200 if found else 404, b"<html>hello</html>" if found else b"<html>not found</html>", "text/html")


@pytest.fixture
def web_server() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _NotAGateway)) as url:
        yield url


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and TOKEN not in text
    return text


async def test_a_url_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError) as info:
        await GatewayProvider(url, "t").check()
    assert _one_line(info.value).startswith(f"the kernel gateway at {url} does not answer (")
    report = gateway_report(url, "t")
    assert not report.ok and not report.answers and report.error == str(info.value)
    with pytest.raises(ConfigError, match="does not answer"):
        await KernelPool(size=0, factory=GatewayProvider(url, "t")).start()


async def test_not_a_gateway(web_server: str) -> None:
    with pytest.raises(ConfigError) as info:
        await GatewayProvider(web_server, "t").check()
    assert _one_line(info.value) == f"{web_server} is not a Jupyter kernel gateway (HTTP 404 for GET /api/kernelspecs)"
    report = gateway_report(web_server)
    assert report.answers and not report.is_gateway and not report.ok


@pytest.mark.sandbox
@pytest.mark.gateway
async def test_wrong_or_missing_token(gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWENKIT_GATEWAY_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        await GatewayProvider(gateway.url, "wrong-token").check()
    assert _one_line(info.value) in {
        f"the kernel gateway at {gateway.url} rejected the token (HTTP {status})" for status in (401, 403)
    }
    with pytest.raises(ConfigError, match="requires a token and none was given"):
        await GatewayProvider(gateway.url).check()
    report = gateway_report(gateway.url, "wrong-token")
    assert report.answers and not report.auth_ok and not report.ok
    # The tool refuses to start rather than show the model an error it cannot fix.
    tool = CodeInterpreter(kernels=f"gateway:{gateway.url}", gateway_token="wrong-token", pool_size=0)
    try:
        with pytest.raises(ConfigError, match="rejected the token"):
            await tool.run({"code": "1+1"}, ToolContext(conversation_id="x", call_id="c"))
    finally:
        await tool.aclose()


@pytest.mark.sandbox
@pytest.mark.gateway
async def test_report_tells_sandboxed_from_plain_kernelspecs(gateway: GatewayServer) -> None:
    report = gateway_report(f"gateway:{gateway.url}", TOKEN)
    assert report.ok and report.sandboxed and report.kernel_name == "qwenkit-sandbox"
    assert report.lines == (
        f"gateway: {gateway.url} answers (HTTP 200)", "auth: token accepted",
        "kernelspec: 'qwenkit-sandbox' is qwenkit's bubblewrap sandbox",
    )
    plain = gateway_report(gateway.url, TOKEN, kernel_name="python3")
    assert plain.ok and not plain.sandboxed and "NO sandbox" in plain.lines[-1]
    with pytest.raises(ConfigError, match="would run code with no sandbox: kernelspec 'python3' is a plain one"):
        await GatewayProvider(gateway.url, TOKEN, kernel_name="python3").check()
    missing = gateway_report(gateway.url, TOKEN, kernel_name="nope")
    assert not missing.ok and missing.error is not None and "has no kernelspec 'nope'" in missing.error
