"""OpenAICompatible's time limits against a stub server on 127.0.0.1 that trickles, stalls or asks to wait.

Each test states a deadline of a second or less and checks that the call ends with a clear `ModelError`
well before the server would have finished (the bounds are loose; these are not speed tests).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from qwenkit.errors import ModelError
from qwenkit.llm import ChatRequest, OpenAICompatible, UserMessage
from qwenkit.llm._openai.transport import retry_after
from tests.llm.stub_server import Reply, StubServer, chat_body, chunk

REQ = ChatRequest(messages=[UserMessage(content="hi")])


def model(server: StubServer, **kw: object) -> OpenAICompatible:
    return OpenAICompatible("qwen", server.base_url, backoff=0.01, **kw)  # type: ignore[arg-type]


async def test_a_trickling_body_is_cut_at_the_deadline() -> None:
    # One byte every 0.05 s: the reply would take ~10 s and resets any per-read timeout each time.
    async with StubServer([Reply(body=chat_body("x" * 100), trickle=0.05)]) as srv:
        start = time.perf_counter()
        with pytest.raises(ModelError, match=r"did not answer in time: no complete reply within the 0\.8 s deadline"):
            await model(srv, timeout=0.8, idle_timeout=0.5).complete(REQ)
    assert time.perf_counter() - start < 4


async def test_a_trickling_stream_is_cut_at_the_deadline() -> None:
    sse = [chunk({"content": "tok"}) for _ in range(200)]
    async with StubServer([Reply(sse=sse, trickle=0.002)]) as srv:
        deltas: list[str] = []
        start = time.perf_counter()
        with pytest.raises(ModelError, match="deadline"):
            async for c in model(srv, timeout=1.5, idle_timeout=0.5).stream(REQ):
                deltas.append(c.delta)
    assert time.perf_counter() - start < 4
    assert deltas and set(deltas) == {"tok"}  # what arrived in time was shown


async def test_a_body_stalled_after_the_headers_fails_after_the_idle_timeout_without_retry() -> None:
    async with StubServer([Reply(body=chat_body("never finished"), stall_after=10)] * 3) as srv:
        start = time.perf_counter()
        with pytest.raises(ModelError, match=r"sent nothing for 0\.3 s \(idle timeout\)"):
            await model(srv, timeout=30, idle_timeout=0.3).complete(REQ)
    assert time.perf_counter() - start < 4
    assert len(srv.requests) == 1


async def test_a_stream_stalled_midway_fails_after_the_idle_timeout() -> None:
    payload = b'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n'
    async with StubServer([Reply(raw=payload + b"data: {\"choices\": []}\n\n", content_type="text/event-stream",
                                 stall_after=len(payload) + 7)]) as srv:
        deltas = []
        with pytest.raises(ModelError, match="idle timeout"):
            async for c in model(srv, timeout=30, idle_timeout=0.3).stream(REQ):
                deltas.append(c.delta)
    assert deltas == ["par"]


async def test_a_server_that_never_answers_a_stream_fails_after_the_idle_timeout_without_retry() -> None:
    async with StubServer([Reply(never=True)] * 3) as srv:
        start = time.perf_counter()
        with pytest.raises(ModelError, match="idle timeout"):
            async for _ in model(srv, timeout=30, idle_timeout=0.3, max_retries=3).stream(REQ):
                pass
    assert time.perf_counter() - start < 4
    assert len(srv.requests) == 1


async def test_a_non_streamed_reply_may_take_longer_than_the_idle_timeout_to_start() -> None:
    # vLLM generates a non-streamed reply whole before sending a byte; that silence is not a stall.
    async with StubServer([Reply(body=chat_body("slow but fine"), delay=0.5)]) as srv:
        c = await model(srv, timeout=10, idle_timeout=0.2).complete(REQ)
    assert c.text == "slow but fine"


async def test_a_server_that_never_answers_a_plain_call_fails_at_the_deadline() -> None:
    async with StubServer([Reply(never=True)] * 3) as srv:
        with pytest.raises(ModelError, match=r"within the 0\.5 s deadline"):
            await model(srv, timeout=0.5, idle_timeout=0.2).complete(REQ)


async def test_retries_share_the_deadline() -> None:
    # Each 503 is retried after 0.3 s; ten retries would take 3 s, the deadline is 1 s.
    replies = [Reply(503, {"error": {"message": "busy"}}, headers={"Retry-After": "0.3"})] * 10
    async with StubServer(replies) as srv:
        start = time.perf_counter()
        with pytest.raises(ModelError, match="HTTP 503: busy"):
            await model(srv, timeout=1.0, max_retries=10).complete(REQ)
    assert time.perf_counter() - start < 2
    assert 2 <= len(srv.requests) <= 4


async def test_retry_after_seconds_is_honoured() -> None:
    replies = [Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"}),
               Reply(body=chat_body("ok"))]
    async with StubServer(replies) as srv:
        c = await model(srv).complete(REQ)  # backoff alone would wait 0.01 s
    assert c.text == "ok"
    assert srv.arrivals[1] - srv.arrivals[0] >= 0.95


async def test_retry_after_http_date_is_honoured() -> None:
    # Whole seconds: the date is 2-3 s ahead when written, and the client reads it a moment later (over
    # 1 s later on a loaded machine has been seen with 2 s ahead), so it waits well over 0.9 s.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    replies = [Reply(503, {"error": {"message": "busy"}}, headers={"Retry-After": when}), Reply(body=chat_body("ok"))]
    async with StubServer(replies) as srv:
        c = await model(srv).complete(REQ)
    assert c.text == "ok"
    assert srv.arrivals[1] - srv.arrivals[0] >= 0.9


async def test_retry_after_is_capped() -> None:
    replies = [Reply(429, {"error": {"message": "come back in an hour"}}, headers={"Retry-After": "3600"}),
               Reply(body=chat_body("ok"))]
    async with StubServer(replies) as srv:
        c = await asyncio.wait_for(model(srv, max_retry_after=0.2).complete(REQ), 10)
    assert c.text == "ok" and len(srv.requests) == 2


async def test_a_retry_after_past_the_deadline_fails_at_once() -> None:
    replies = [Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "20"}),
               Reply(body=chat_body("x"))]
    async with StubServer(replies) as srv:
        start = time.perf_counter()
        with pytest.raises(ModelError, match=r"HTTP 429: slow down; it asked to retry after 20 s, which is past the 5 s"
                                             r" deadline"):
            await model(srv, timeout=5).complete(REQ)
    assert time.perf_counter() - start < 2
    assert len(srv.requests) == 1


def test_retry_after_header_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after({"retry-after": "7"}) == 7
    assert retry_after({"retry-after": " 1.5 "}) == 1.5
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": format_datetime(now + timedelta(seconds=30), usegmt=True)},
                       now=now.timestamp()) == 30
    assert retry_after({"retry-after": format_datetime(now - timedelta(seconds=30), usegmt=True)},
                       now=now.timestamp()) == 0
    for bad in ("-3", "nan", "inf", "soon", "", "Wed, 99 Foo 2026 00:00:00 GMT"):
        assert retry_after({"retry-after": bad}) is None, bad
    assert retry_after({}) is None


async def test_a_plain_reply_cut_midway_is_retried_then_reported() -> None:
    body = chat_body("cut short")
    async with StubServer([Reply(body=body, close_after=20), Reply(body=body, close_after=20)]) as srv:
        # The cause's wording is the HTTP client's (aiohttp's ClientPayloadError here); the server is named.
        with pytest.raises(ModelError, match=rf"server at {srv.base_url} broke mid-reply \(\w+"):
            await model(srv, max_retries=1).complete(REQ)
    assert len(srv.requests) == 2


async def test_a_stream_cut_midway_is_reported_after_its_deltas() -> None:
    payload = b'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n'
    async with StubServer([Reply(raw=payload * 3, content_type="text/event-stream",
                                 close_after=len(payload) + 5)]) as srv:
        deltas = []
        with pytest.raises(ModelError, match="broke mid-reply"):
            async for c in model(srv).stream(REQ):
                deltas.append(c.delta)
    assert deltas == ["par"] and len(srv.requests) == 1
