"""The fast path's HTTP/1.1 connections (`qwenkit.llm._openai.h1`) against servers that write raw bytes.

What `tests/llm/test_openai_post.py` and the hostile-reply tests cover goes through the same code; these
add the HTTP framing a real server may use (chunked, a body ended by closing, an interim ``100``), keep-alive
reuse and its races, the connection limit, cancellation, TLS and proxy authentication.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from qwenkit.errors import ModelError
from qwenkit.llm import ChatRequest, OpenAICompatible, UserMessage
from qwenkit.llm._openai import post
from tests.llm.stub_server import Reply, StubServer, chat_body
from tests.tls import self_signed_cert

REQ = ChatRequest(messages=[UserMessage(content="hi")])
CLOSE = b""  # in a script: close the connection instead of answering


def reply_bytes(text: str, *, head: str = "HTTP/1.1 200 OK", length: bool = True, extra: str = "") -> bytes:
    body = json.dumps(chat_body(text)).encode()
    size = f"content-length: {len(body)}\r\n" if length else ""
    return f"{head}\r\ncontent-type: application/json\r\n{size}{extra}\r\n".encode() + body


def chunked(text: str) -> bytes:
    body = json.dumps(chat_body(text)).encode()
    pieces = [body[:10], body[10:]]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n" + framed


class RawServer:
    """Answers the n-th request (over any connection) with ``script[n]``: raw bytes, or `CLOSE`.

    ``after`` maps a request number to bytes written a moment after its answer (unasked-for bytes).
    An item ``(bytes, how)`` then closes the connection: ``"close"`` at once, ``"reset"`` with a TCP reset,
    ``"wait S"`` after waiting S seconds before writing.
    """

    def __init__(self, script: list[bytes | tuple[bytes, str]], after: dict[int, bytes] | None = None) -> None:
        self.script = list(script)
        self.after = after or {}
        self.requests = 0
        self.connections = 0
        self.closed = 0
        self.heads: list[str] = []
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                text = head.decode("latin-1")
                self.heads.append(text)
                length = next((int(ln.split(":", 1)[1]) for ln in text.split("\r\n")
                               if ln.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                n = self.requests
                self.requests += 1
                item = self.script[n] if n < len(self.script) else CLOSE
                data, how = item if isinstance(item, tuple) else (item, "close" if item == CLOSE else "")
                close = how != ""
                if how.startswith("wait "):
                    await asyncio.sleep(float(how.split()[1]))
                writer.write(data)
                await writer.drain()
                if how == "reset":  # end with a TCP reset, not an orderly close
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    break
                if n in self.after:
                    await asyncio.sleep(0.05)
                    writer.write(self.after[n])
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield f"http://127.0.0.1:{self.port}/v1"


async def texts(url: str, n: int, **kw: object) -> list[str]:
    async with OpenAICompatible("qwen", url, **kw) as m:  # type: ignore[arg-type]
        return [(await m.complete(REQ)).text for _ in range(n)]


async def test_a_chunked_reply_and_a_reply_ended_by_closing_are_read_whole() -> None:
    srv = RawServer([chunked("in chunks"), chunked("again"),
                     (reply_bytes("until the end", head="HTTP/1.0 200 OK", length=False), "close"),
                     reply_bytes("fresh")])
    async with srv.running() as url:
        assert await texts(url, 4, max_retries=0) == ["in chunks", "again", "until the end", "fresh"]
    assert srv.connections == 2  # the chunked replies kept the connection; the closed one could not


async def test_an_interim_100_continue_is_skipped() -> None:
    srv = RawServer([b"HTTP/1.1 100 Continue\r\n\r\n" + reply_bytes("after the interim one")])
    async with srv.running() as url:
        assert await texts(url, 1) == ["after the interim one"]


async def test_a_reply_that_is_not_http_is_one_error() -> None:
    srv = RawServer([(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "close")])
    async with srv.running() as url:
        with pytest.raises(ModelError, match=r"cannot reach the model server at .*unreadable HTTP reply"):
            await texts(url, 1, max_retries=0)


async def test_a_kept_alive_connection_closed_at_once_as_it_is_reused_gets_the_request_again() -> None:
    # The keep-alive race: the server drops the idle connection just as the next request is written on it.
    srv = RawServer([reply_bytes("first"), CLOSE, reply_bytes("second")])
    async with srv.running() as url:
        assert await texts(url, 2, max_retries=0) == ["first", "second"]
    assert srv.requests == 3 and srv.connections == 2


async def test_a_reused_connection_closed_after_a_while_is_an_error_without_retries() -> None:
    # Closed 0.7 s after the request, without a reply: the server may have worked on it; not sent again.
    srv = RawServer([reply_bytes("first"), (b"", "wait 0.7"), reply_bytes("never asked")])
    async with srv.running() as url, OpenAICompatible("qwen", url, max_retries=0) as m:
        assert (await m.complete(REQ)).text == "first"
        with pytest.raises(ModelError, match=r"cannot reach the model server at .*closed the connection"):
            await m.complete(REQ)
    assert srv.requests == 2


async def test_a_new_connection_closed_before_a_reply_is_an_error_without_retries() -> None:
    srv = RawServer([CLOSE, reply_bytes("never asked")])
    async with srv.running() as url:
        with pytest.raises(ModelError, match=r"cannot reach the model server at .*closed the connection"):
            await texts(url, 1, max_retries=0)
    assert srv.requests == 1


async def test_a_connection_that_sent_unasked_bytes_is_not_reused() -> None:
    # Bytes after the reply (glued to it, or a moment later while idle) leave the connection unusable.
    glued = reply_bytes("one") + b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    srv = RawServer([glued, reply_bytes("two"), reply_bytes("three")], after={1: b"junk"})
    async with srv.running() as url, OpenAICompatible("qwen", url, max_retries=0) as m:
        got = [(await m.complete(REQ)).text]
        got.append((await m.complete(REQ)).text)
        await asyncio.sleep(0.2)  # the junk arrives while the second connection is idle
        got.append((await m.complete(REQ)).text)
    assert got == ["one", "two", "three"]
    assert srv.connections == 3


async def test_connection_close_is_honoured() -> None:
    srv = RawServer([reply_bytes("one", extra="connection: close\r\n"), reply_bytes("two")])
    async with srv.running() as url:
        assert await texts(url, 2, max_retries=0) == ["one", "two"]
    assert srv.connections == 2


async def test_the_pool_opens_at_most_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(post, "MAX_CONNECTIONS", 2)
    async with StubServer([], default=Reply(body=chat_body("ok"), delay=0.05)) as srv, \
            OpenAICompatible("qwen", srv.base_url) as m:
        done = await asyncio.gather(*[m.complete(REQ) for _ in range(7)])
    assert [c.text for c in done] == ["ok"] * 7
    assert srv.connections == 2


async def test_a_cancelled_request_closes_its_connection() -> None:
    async with StubServer([Reply(body=chat_body("late"), delay=30), Reply(body=chat_body("next"))]) as srv, \
            OpenAICompatible("qwen", srv.base_url) as m:
        task = asyncio.create_task(m.complete(REQ))
        for _ in range(200):
            if srv.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pool = m.replicas[0].post._pool  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        assert pool is not None and not pool.open and not pool.idle  # closed, not left for a next request
        assert (await m.complete(REQ)).text == "next"
    assert srv.connections == 2


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


async def test_https_goes_the_fast_way_with_the_sdk_paths_trust(
        cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [Reply(body=chat_body("over TLS")), Reply(body=chat_body("again"))]
    async with StubServer(replies, tls=server_tls(cert)) as srv:
        assert srv.base_url.startswith("https://")
        with pytest.raises(ModelError, match=r"cannot reach the model server at https://.*CERTIFICATE_VERIFY_FAILED"):
            await texts(srv.base_url, 1, max_retries=0)  # self-signed: not trusted by default
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # trusted as the SDK path trusts it
        assert await texts(srv.base_url, 2) == ["over TLS", "again"]
    # One connection served both (the refused handshake never reached the server's handler).
    assert srv.headers[0]["user-agent"].startswith("qwenkit/") and srv.connections == 1


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return lambda url: monkeypatch.setenv("all_proxy", url)


async def test_a_proxy_with_credentials_is_sent_them(proxy_env: Callable[[str], None]) -> None:
    async with StubServer([Reply(body=chat_body("via proxy"))]) as proxy:
        proxy_env(f"http://user:p%40ss@127.0.0.1:{proxy.port}")
        target = "http://10.255.255.1:8000/v1"  # never reached: the proxy answers
        assert await texts(target, 1, max_retries=0) == ["via proxy"]
    assert proxy.targets == [f"{target}/chat/completions"]
    assert proxy.headers[0]["proxy-authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert proxy.headers[0]["host"] == "10.255.255.1:8000"


def test_https_through_a_proxy_is_left_to_the_sdk(proxy_env: Callable[[str], None]) -> None:
    proxy_env("http://127.0.0.1:3128")
    kw: dict[str, object] = {"max_bytes": 10, "connect_timeout": 1.0, "idle_timeout": 1.0, "where": "x"}
    assert not post.JsonPost("https://10.0.0.1/v1/chat/completions", {}, **kw).usable  # type: ignore[arg-type]
    assert post.JsonPost("http://10.0.0.1/v1/chat/completions", {}, **kw).usable  # type: ignore[arg-type]


async def test_a_server_gone_between_two_requests_is_a_model_error() -> None:
    # The idle connection is stale and the new one is refused: one ModelError, not an OSError.
    srv = RawServer([reply_bytes("one")])
    async with OpenAICompatible("qwen", "http://127.0.0.1:1/v1", max_retries=0) as m:
        async with srv.running() as url:
            m = OpenAICompatible("qwen", url, max_retries=0)
            assert (await m.complete(REQ)).text == "one"
        await asyncio.sleep(0.05)
        with pytest.raises(ModelError, match=r"cannot reach the model server at .*ConnectionRefusedError"):
            await m.complete(REQ)
        await m.aclose()


async def test_a_host_name_that_cannot_be_looked_up_is_a_model_error() -> None:
    async with OpenAICompatible("qwen", "http://" + "a" * 64 + ".example/v1", max_retries=0) as m:
        with pytest.raises(ModelError, match=r"cannot reach the model server at "):
            await m.complete(REQ)


def test_the_request_line_and_host_are_encoded(proxy_env: Callable[[str], None]) -> None:
    kw: dict[str, object] = {"max_bytes": 10, "connect_timeout": 1.0, "idle_timeout": 1.0, "where": "x"}
    head = post.JsonPost("http://例え.jp:8000/my models/v1/chat/completions?a=1#frag", {}, **kw)._head  # type: ignore[arg-type]
    assert head.startswith(b"POST /my%20models/v1/chat/completions?a=1 HTTP/1.1\r\nHost: xn--r8jz45g.jp:8000\r\n")
    head = post.JsonPost("http://[::1]/v1/chat/completions", {}, **kw)._head  # type: ignore[arg-type]
    assert b"\r\nHost: [::1]\r\n" in head
    proxy_env("http://127.0.0.1:3128")
    head = post.JsonPost("http://u:pw@10.0.0.1:8000/v1/chat/completions#f", {}, **kw)._head  # type: ignore[arg-type]
    assert head.startswith(b"POST http://10.0.0.1:8000/v1/chat/completions HTTP/1.1\r\n") and b"pw" not in head


async def test_headers_past_the_limit_are_refused() -> None:
    srv = RawServer([(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 200_000, "wait 0")])
    async with srv.running() as url:
        with pytest.raises(ModelError, match=r"sent more than 65536 bytes of reply headers"):
            await texts(url, 1, max_retries=0)


async def test_a_partial_reply_glued_after_a_whole_one_is_not_read_as_the_next() -> None:
    glued = reply_bytes("one") + b"HTTP/1.1 503 Glued\r\nx-a: "
    srv = RawServer([glued, reply_bytes("two")])
    async with srv.running() as url:
        assert await texts(url, 2, max_retries=0) == ["one", "two"]
    assert srv.connections == 2


async def test_a_reset_inside_a_body_ended_by_closing_is_a_broken_reply() -> None:
    cut = reply_bytes("never whole", head="HTTP/1.0 200 OK", length=False)[:-10]
    srv = RawServer([(cut, "reset"), reply_bytes("retried")])
    async with srv.running() as url:
        with pytest.raises(ModelError, match=r"broke mid-reply"):
            await texts(url, 1, max_retries=0)
        assert await texts(url, 1, max_retries=1) == ["retried"]


async def test_an_unreadable_chunk_is_a_broken_reply() -> None:
    bad = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
    srv = RawServer([(bad, "wait 0")])
    async with srv.running() as url:
        with pytest.raises(ModelError, match=r"broke mid-reply \(unreadable HTTP reply"):
            await texts(url, 1, max_retries=0)


async def test_a_redirect_is_followed_by_the_sdk_path() -> None:
    moved = {"/v1/chat/completions": Reply(307, {}, headers={"location": "/v2/chat/completions"})}
    async with StubServer([Reply(body=chat_body("moved"))], routes=moved) as srv:
        assert await texts(srv.base_url, 1, max_retries=0) == ["moved"]
    # The fast path met the redirect and left the attempt to the SDK's client, which followed it.
    assert [path for path, _ in srv.route_hits] == ["/v1/chat/completions"] * 2
    assert srv.targets == ["/v2/chat/completions"]


async def test_aclose_ends_a_request_in_flight_at_once() -> None:
    async with StubServer([Reply(body=chat_body("late"), delay=30)]) as srv:
        m = OpenAICompatible("qwen", srv.base_url)
        task = asyncio.create_task(m.complete(REQ))
        for _ in range(200):
            if srv.requests:
                break
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        await m.aclose()
        with pytest.raises(ModelError, match=r"was closed \(aclose\)"):
            await task
        assert time.perf_counter() - start < 2


async def test_waiting_for_a_place_is_in_order_and_survives_a_cancelled_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(post, "MAX_CONNECTIONS", 1)
    async with StubServer([], default=Reply(body=chat_body("ok"), delay=0.05)) as srv, \
            OpenAICompatible("qwen", srv.base_url, timeout=10) as m:
        tasks = [asyncio.create_task(m.complete(REQ)) for _ in range(5)]
        await asyncio.sleep(0.02)
        tasks[2].cancel()  # waiting for the one connection
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Completion", "Completion", "CancelledError", "Completion",
                                                   "Completion"]
    assert srv.connections == 1 and len(srv.requests) == 4


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_model_used_from_loop_after_loop_leaves_no_connection_open() -> None:
    from tests.llm.test_openai_post import StubThread

    with StubThread([]) as srv:
        srv.default = Reply(body=chat_body("ok"))
        m = OpenAICompatible("qwen", srv.base_url)

        async def one() -> str:
            return (await m.complete(REQ)).text

        asyncio.run(one())
        gc.collect()
        before = _fds()
        gc.disable()  # the peer sees each old connection closed without the cycle collector's help
        try:
            for _ in range(5):
                assert asyncio.run(one()) == "ok"
            time.sleep(0.1)
            assert len(srv._tasks) == 1  # only the last loop's connection is still served
        finally:
            gc.enable()
        gc.collect()  # asyncio's transports are cyclic: their sockets are freed by the collector
        after = _fds()
        asyncio.run(m.aclose())
    assert after <= before


def test_a_loop_closed_with_a_request_waiting_for_a_place_leaves_the_model_usable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.llm.test_openai_post import StubThread

    monkeypatch.setattr(post, "MAX_CONNECTIONS", 1)
    with StubThread([]) as srv:
        srv.default = Reply(body=chat_body("ok"), delay=0.3)
        m = OpenAICompatible("qwen", srv.base_url)
        old = asyncio.new_event_loop()
        busy = old.create_task(m.complete(REQ))  # holds the one connection
        waiting = old.create_task(m.complete(REQ))  # waits for a place
        old.run_until_complete(asyncio.sleep(0.1))
        assert not busy.done() and not waiting.done()
        old.close()  # closed as it is, tasks pending (a script's loop dropped mid-run)
        assert asyncio.run(m.complete(REQ)).text == "ok"  # a new pool in the new loop
        assert asyncio.run(m.complete(REQ)).text == "ok"
        asyncio.run(m.aclose())
        del busy, waiting
        gc.collect()


async def test_endless_trailers_after_a_chunked_body_are_cut_at_the_cap() -> None:
    # Trailer fields come after the body, where the header limit no longer applies: the raw bytes of a reply
    # (framing and trailers included) are bounded too, so they cannot grow memory until the deadline.
    body = json.dumps(chat_body("x")).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    flood = b"%x\r\n%s\r\n0\r\n" % (len(body), body) + b"x-trailer: " + b"a" * 100 + b"\r\n" * 1 + (
        b"x-t: " + b"b" * 90 + b"\r\n") * 4000
    srv = RawServer([(head + flood, "wait 0")])
    async with srv.running() as url:
        start = time.perf_counter()
        with pytest.raises(ModelError, match=r"sent a reply larger than 50000 bytes"):
            await texts(url, 1, max_retries=0, max_reply_bytes=50_000, idle_timeout=20)
        assert time.perf_counter() - start < 5
