"""The ``kernels`` setting (``--kernels``) and the kernelspec file; no kernel is started here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qwenkit.errors import ConfigError
from qwenkit.sandbox import KernelFactory, KernelsSetting, make_provider, parse_kernels
from qwenkit.sandbox.gateway import GatewayProvider
from qwenkit.sandbox.kernelspec import KERNEL_NAME, install, is_sandboxed_spec, kernelspec
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter


def test_parse_kernels_accepts_local_and_gateway_urls() -> None:
    assert parse_kernels("local") == KernelsSetting("local")
    assert parse_kernels(" gateway:https://gw.example:8888/base/ ") == KernelsSetting(
        "gateway", "https://gw.example:8888/base")
    assert str(parse_kernels("gateway:http://127.0.0.1:9")) == "gateway:http://127.0.0.1:9"


@pytest.mark.parametrize(("value", "message"), [
    ("remote", "kernels must be 'local' or 'gateway:http(s)://host:port', not 'remote'"),
    ("", "kernels must be 'local' or 'gateway:http(s)://host:port', not ''"),
    ("gateway:", "expected http://host:port or https://host:port"),
    ("gateway:ftp://host", "expected http://host:port or https://host:port"),
    ("gateway:http://host:99999", "bad kernel gateway URL 'http://host:99999'"),
    ("gateway:http://user:pw@host", "give the token separately, not in the URL"),
    ("gateway:http://host/?token=x", "a query or fragment is not allowed"),
])
def test_parse_kernels_rejects_bad_values_in_one_line(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_kernels(value)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_make_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_provider("local"), KernelFactory)
    monkeypatch.setenv("QWENKIT_GATEWAY_TOKEN", "from-env")
    provider = make_provider("gateway:http://127.0.0.1:9")
    assert isinstance(provider, GatewayProvider) and provider.endpoint.token == "from-env"
    assert "from-env" not in repr(provider.endpoint)
    assert make_provider(provider) is provider
    assert isinstance(make_provider("gateway:http://127.0.0.1:9", token="arg"), GatewayProvider)
    with pytest.raises(ConfigError, match="apply to local kernels only"):
        make_provider("gateway:http://127.0.0.1:9", policy="unsandboxed")
    with pytest.raises(ConfigError, match="kernels must be"):
        CodeInterpreter(kernels="gateway")
    tool = CodeInterpreter(kernels="gateway:https://gw.example", gateway_token="t")
    assert isinstance(tool.provider, GatewayProvider) and tool.provider.endpoint.token == "t"
    assert tool.provider.endpoint.ws_url("/api") == "wss://gw.example/api"


def test_kernelspec_content_and_install(tmp_path: Path) -> None:
    spec = kernelspec("/opt/py/bin/python3")
    assert spec["argv"] == ["/opt/py/bin/python3", "-m", "qwenkit.sandbox.kernelspec", "launch", "-f",
                            "{connection_file}"]
    assert spec["interrupt_mode"] == "message" and is_sandboxed_spec(spec)
    assert not is_sandboxed_spec({"argv": ["python", "-m", "ipykernel_launcher"], "metadata": {}})
    assert not is_sandboxed_spec(None) and not is_sandboxed_spec({"metadata": {"qwenkit": "yes"}})
    where = install(tmp_path)
    assert where == tmp_path / "share" / "jupyter" / "kernels" / KERNEL_NAME
    installed = json.loads((where / "kernel.json").read_text())
    assert installed["argv"][0] == sys.executable and is_sandboxed_spec(installed)
