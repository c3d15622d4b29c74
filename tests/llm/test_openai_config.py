"""OpenAICompatible's settings are checked at construction; its HTTP client is closed by `aclose`."""

from __future__ import annotations

import socket

import pytest

from qwenkit.errors import ConfigError, ModelError
from qwenkit.llm import ChatModel, ChatRequest, OpenAICompatible, UserMessage
from tests.llm.stub_server import Reply, StubServer, chat_body

REQ = ChatRequest(messages=[UserMessage(content="hi")])


@pytest.mark.parametrize(("key", "message"), [
    ("sk-abc\n", r"line break at character 7 of 7.*newline"),
    ("sk-\r\nabc", r"line break at character 4"),
    ("sk-clé", r"non-ASCII character \(U\+00E9\) at character 6"),
    ("sk-\x00", r"control character \(U\+0000\)"),
    ("sk-\tx", r"control character \(U\+0009\)"),
])
def test_an_api_key_an_http_header_cannot_carry_is_a_config_error(key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        OpenAICompatible("qwen", "http://127.0.0.1:8000/v1", key)
    assert key.strip() not in str(info.value)  # the key itself is never shown


@pytest.mark.parametrize(("url", "message"), [
    ("http://127.0.0.1:99999/v1", r"'http://127\.0\.0\.1:99999/v1' is not a valid URL: Port out of range"),
    ("http://[::1/v1", r"'http://\[::1/v1' is not a valid URL"),
    ("http://127.0.0.1:80a/v1", r"is not a valid URL"),
    ("ftp://127.0.0.1/v1", r"must start with http:// or https://"),
    ("127.0.0.1:8000/v1", r"must start with http:// or https://"),
    ("http:///v1", r"has no host name"),
    ("http://127.0.0.1:0/v1", r"port 0"),
])
def test_a_bad_base_url_is_a_config_error_naming_it(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OpenAICompatible("qwen", url)


@pytest.mark.parametrize("setting", [{"timeout": 0}, {"timeout": -1}, {"timeout": float("nan")},
                                     {"idle_timeout": float("inf")}, {"max_reply_bytes": 0},
                                     {"max_retries": -1}])
def test_limits_must_be_positive(setting: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="must"):
        OpenAICompatible("qwen", **setting)  # type: ignore[arg-type]


def test_ipv6_and_https_urls_are_accepted() -> None:
    OpenAICompatible("qwen", "http://[::1]:8000/v1")
    OpenAICompatible("qwen", "https://api.example.com/v1", "sk-" + "A" * 40)


async def test_aclose_is_idempotent_and_a_closed_model_says_so() -> None:
    async with StubServer([Reply(body=chat_body("one"))]) as srv:
        m = OpenAICompatible("qwen", srv.base_url)
        assert isinstance(m, ChatModel)
        assert (await m.complete(REQ)).text == "one"
        await m.aclose()
        await m.aclose()
        with pytest.raises(ModelError, match="was closed"):
            await m.complete(REQ)
        with pytest.raises(ModelError, match="was closed"):
            async for _ in m.stream(REQ):
                pass
    assert len(srv.requests) == 1


async def test_async_with_closes_the_model() -> None:
    async with StubServer([Reply(body=chat_body("one"))]) as srv:
        async with OpenAICompatible("qwen", srv.base_url) as m:
            assert (await m.complete(REQ)).text == "one"
        with pytest.raises(ModelError, match="was closed"):
            await m.complete(REQ)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def test_the_environment_proxy_is_used(proxy_env: pytest.MonkeyPatch) -> None:
    target = f"http://127.0.0.1:{_closed_port()}/v1"  # nothing listens there: only the proxy can answer
    async with StubServer([Reply(body=chat_body("via proxy"))]) as proxy:
        proxy_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        async with OpenAICompatible("qwen", target) as m:
            assert (await m.complete(REQ)).text == "via proxy"
    assert proxy.targets == [f"{target}/chat/completions"]


async def test_no_proxy_exempts_a_host(proxy_env: pytest.MonkeyPatch) -> None:
    async with StubServer([Reply(body=chat_body("direct"))]) as srv, StubServer([]) as proxy:
        proxy_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        proxy_env.setenv("no_proxy", "127.0.0.1")
        async with OpenAICompatible("qwen", srv.base_url) as m:
            assert (await m.complete(REQ)).text == "direct"
    assert proxy.requests == []


def test_an_unusable_environment_proxy_is_a_config_error_without_its_password(proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("http_proxy", "ftp://user:secret@127.0.0.1:3128")
    with pytest.raises(ConfigError, match=r"the proxy '127\.0\.0\.1:3128' set in the environment") as info:
        OpenAICompatible("qwen", "http://127.0.0.1:8000/v1")
    assert "secret" not in str(info.value)
