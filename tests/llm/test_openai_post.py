"""`complete`'s fast path (`qwenkit.llm._openai.post`) against stub servers on 127.0.0.1.

The hostile-reply tests in the other test_openai files drive `complete` through this path too; these add
what is particular to it: a slow drip bounded by the deadline, a cap on a body without a length, retries
and failover of a connection-level failure, the wire format the SDK used to send, closing and dropping
the connection pool, and a model used from two event loops in turn.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import threading
import time
from typing import Any

import pytest

from qwenkit.errors import ModelError
from qwenkit.llm import ChatRequest, OpenAICompatible, Sampling, UserMessage
from qwenkit.llm._openai.post import JsonPost, encode_body, server_message
from tests.llm.stub_server import Reply, StubServer, chat_body

REQ = ChatRequest(messages=[UserMessage(content="hi")])


def model(server: StubServer, **kw: object) -> OpenAICompatible:
    return OpenAICompatible("qwen", server.base_url, backoff=0.01, **kw)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_every_plain_call_goes_through_the_fast_path_not_the_sdk() -> None:
    async with StubServer([Reply(body=chat_body("one")), Reply(body=chat_body("two"))]) as srv, model(srv) as m:
        assert m.replicas[0].post is not None
        assert [(await m.complete(REQ)).text for _ in range(2)] == ["one", "two"]
    assert all(h.get("user-agent", "").startswith("qwenkit/") for h in srv.headers)
    assert srv.connections == 1  # both requests went over one kept-alive connection


async def test_a_drip_that_resets_every_idle_timer_is_still_cut_at_the_deadline() -> None:
    # One byte a second, the idle timeout 30 s: only the 2.5 s deadline can end it.
    async with StubServer([Reply(body=chat_body("slow"), trickle=1.0)]) as srv:
        start = time.perf_counter()
        with pytest.raises(ModelError, match=r"no complete reply within the 2\.5 s deadline"):
            await model(srv, timeout=2.5, idle_timeout=30).complete(REQ)
    assert 2.4 < time.perf_counter() - start < 4.5
    assert len(srv.requests) == 1  # the deadline is not retried


async def test_a_body_without_a_length_is_cut_at_the_byte_cap() -> None:
    # Chunked, endless: no Content-Length to refuse up front; the bytes read are counted.
    async with StubServer([Reply(forever=b'{"choices": [' + b" " * 4000)]) as srv:
        with pytest.raises(ModelError, match=r"at .* sent a reply larger than 50000 bytes; the rest was not read"):
            await asyncio.wait_for(model(srv, max_reply_bytes=50_000).complete(REQ), 10)


async def test_a_reply_cut_midway_is_retried_and_the_retry_answers() -> None:
    body = chat_body("whole at last")
    async with StubServer([Reply(body=body, close_after=20), Reply(body=body)]) as srv:
        c = await model(srv, max_retries=1).complete(REQ)
    assert c.text == "whole at last" and len(srv.requests) == 2


async def test_a_connection_closed_before_any_reply_is_retried() -> None:
    async with StubServer([Reply(body=chat_body("x"), close_after=0), Reply(body=chat_body("second"))]) as srv:
        c = await model(srv, max_retries=1).complete(REQ)
    assert c.text == "second" and len(srv.requests) == 2


async def test_a_refused_connection_fails_over_to_the_next_replica_at_once() -> None:
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    # No model check first (check_models=False): the refused connection is met by `complete` itself.
    async with (StubServer([], default=Reply(body=chat_body("alive"))) as srv,
                OpenAICompatible("qwen", [dead, srv.base_url], check_models=False, backoff=5.0) as m):
        start = time.perf_counter()
        texts = [(await m.complete(REQ)).text for _ in range(3)]
        assert time.perf_counter() - start < 2  # no back-off wait: the other replica answered
        down, up = m.replicas
    assert texts == ["alive"] * 3
    assert "cannot reach the model server at " + dead in down.last_error
    assert down.failures == 1 and down.in_flight == 0 and up.in_flight == 0  # it rested after one try
    assert up.answered == 3


async def test_nothing_listening_is_a_connection_error_after_the_retries() -> None:
    m = OpenAICompatible("qwen", f"http://127.0.0.1:{closed_port()}/v1", max_retries=2, backoff=0.01)
    with pytest.raises(ModelError, match=r"cannot reach the model server at http://127\.0\.0\.1:\d+/v1 \(\w+"):
        await m.complete(REQ)
    await m.aclose()


async def test_status_errors_keep_their_meaning() -> None:
    replies = [Reply(401, {"error": {"message": "Invalid API key"}}),
               Reply(404, {"error": {"message": "The model `qwen` does not exist."}}),
               Reply(502, raw=b"<html>bad gateway</html>", content_type="text/html"),
               Reply(503, {"message": "top-level message"})]
    async with StubServer(replies) as srv:
        m = model(srv, max_retries=0)
        with pytest.raises(ModelError, match=r"answered HTTP 401: Invalid API key$"):
            await m.complete(REQ)
        with pytest.raises(ModelError, match=r"has no model 'qwen': The model `qwen` does not exist\.$"):
            await m.complete(REQ)
        with pytest.raises(ModelError, match=r"answered HTTP 502: Error code: 502$"):
            await m.complete(REQ)
        with pytest.raises(ModelError, match=r"answered HTTP 503: top-level message$"):
            await m.complete(REQ)


async def test_the_request_is_what_the_sdk_sent() -> None:
    req = ChatRequest(messages=[UserMessage(content="héllo \ud800")], stop=["✿"],
                      sampling=Sampling(temperature=0.5, max_tokens=9, extra_body={"top_k": 3, "temperature": 0.1}))
    async with StubServer([Reply(body=chat_body("ok"))]) as srv:
        await OpenAICompatible("qwen", srv.base_url, "sk-test").complete(req)
    sent, headers = srv.requests[0], srv.headers[0]
    # extra_body's fields go at the top level and win, as with the SDK's extra_body.
    assert sent["top_k"] == 3 and sent["temperature"] == 0.1 and sent["max_tokens"] == 9
    assert sent["messages"] == [{"role": "user", "content": "héllo \ud800"}]  # a lone surrogate, escaped
    assert headers["authorization"] == "Bearer sk-test" and headers["content-type"] == "application/json"
    assert headers["accept-encoding"] == "identity"
    assert srv.targets == ["/v1/chat/completions"]


def test_encode_body_and_server_message() -> None:
    assert encode_body({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()
    assert encode_body({"a": "\udfff"}) == b'{"a":"\\udfff"}'
    with pytest.raises(ModelError, match="cannot be sent as JSON: ValueError"):
        encode_body({"t": float("nan")})
    assert server_message(500, b'{"error": {"message": "boom"}}') == "boom"
    assert server_message(500, b'{"error": "flat"}') == "Error code: 500"
    assert server_message(500, b"[" * 100_000) == "Error code: 500"
    assert server_message(400, b"\xff\xfe") == "Error code: 400"


async def test_aclose_closes_the_pooled_connections() -> None:
    async with StubServer([Reply(body=chat_body("one"))]) as srv:
        m = model(srv)
        await m.complete(REQ)
        assert len(srv._tasks) == 1  # the kept-alive connection's handler waits for the next request
        await m.aclose()
        for _ in range(100):
            if not srv._tasks:
                break
            await asyncio.sleep(0.01)
        assert not srv._tasks  # the client closed the connection


class StubThread:
    """A `StubServer` on an event loop of its own in a thread; on exit its handlers end inside that loop."""

    def __init__(self, replies: list[Reply]) -> None:
        self.server = StubServer(replies)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(5)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.__aexit__(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_a_model_dropped_unclosed_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with StubThread([Reply(body=chat_body("one"))]) as srv:
        m = OpenAICompatible("qwen", srv.base_url)
        assert asyncio.run(m.complete(REQ)).text == "one"  # the loop is closed, the pool is not
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            del m
            gc.collect()
    assert "Unclosed" not in caplog.text


def test_a_model_can_be_used_from_one_event_loop_after_another() -> None:
    # A CLI may call asyncio.run more than once with one model: each loop gets a session of its own.
    with StubThread([Reply(body=chat_body("first")), Reply(body=chat_body("second"))]) as srv:
        m = OpenAICompatible("qwen", srv.base_url)

        async def one() -> str:
            return (await m.complete(REQ)).text

        assert asyncio.run(one()) == "first"
        assert asyncio.run(one()) == "second"
        asyncio.run(m.aclose())
    assert [r["model"] for r in srv.requests] == ["qwen", "qwen"]


def test_a_socks_proxy_is_left_to_the_sdk_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    kw: dict[str, Any] = {"max_bytes": 10, "connect_timeout": 1.0, "idle_timeout": 1.0, "where": "x"}
    assert JsonPost("http://10.0.0.1:8000/v1/chat/completions", {}, **kw).usable
    monkeypatch.setenv("all_proxy", "socks5://127.0.0.1:1080")
    assert not JsonPost("http://10.0.0.1:8000/v1/chat/completions", {}, **kw).usable
    monkeypatch.setenv("all_proxy", "http://127.0.0.1:3128")
    assert JsonPost("http://10.0.0.1:8000/v1/chat/completions", {}, **kw).usable


async def test_a_replica_without_the_fast_path_is_served_by_the_sdk() -> None:
    replies = [Reply(503, {"error": {"message": "busy"}}), Reply(body=chat_body("via the SDK"))]
    async with StubServer(replies) as srv, model(srv) as m:
        m.replicas[0].post = None  # as with a SOCKS proxy
        assert (await m.complete(REQ)).text == "via the SDK"
    assert len(srv.requests) == 2 and "qwenkit" not in srv.headers[0].get("user-agent", "")
