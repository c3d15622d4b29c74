"""Fuzz the OpenAI reply readers: random bytes, random JSON and random text (lone surrogates included).

Each example must end as a `Completion` that encodes as UTF-8 or as a `ModelError`; nothing else. The fast
path's HTTP framing, fed random bytes, must end as a whole reply or a named failure.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.errors import ModelError
from qwenkit.llm._openai.reply import StreamAssembler, parse_body
from qwenkit.llm._openai.sse import sse_data
from qwenkit.types import Completion

MANY = settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# Drawing nested chat-completion shapes costs ~30 ms an example on a loaded 2-core machine; 1,000 keep such a
# test near 30 s, inside pytest's per-test timeout (10,000 took over 300 s).
SHAPED = settings(MANY, max_examples=1_000)
WHERE = "http://127.0.0.1:1/v1"

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates too
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
CALL = st.fixed_dictionaries({}, optional={
    "id": JSON, "type": st.sampled_from(["function", "other"]) | JSON, "index": st.integers(0, 3) | JSON,
    "function": st.fixed_dictionaries({}, optional={"name": ANY_TEXT | JSON,
                                                   "arguments": ANY_TEXT | JSON.map(json.dumps) | JSON})})
MESSAGE = st.fixed_dictionaries({}, optional={"content": ANY_TEXT | JSON,
                                              "tool_calls": st.lists(CALL, max_size=3) | JSON})
CHOICE = st.fixed_dictionaries({}, optional={"message": MESSAGE | JSON, "delta": MESSAGE | JSON,
                                             "finish_reason": ANY_TEXT | JSON, "stop_reason": JSON})
BODY = st.fixed_dictionaries({}, optional={"choices": st.lists(CHOICE, max_size=2) | JSON, "error": JSON,
                                           "usage": st.fixed_dictionaries({}, optional={
                                               "prompt_tokens": st.integers() | JSON,
                                               "completion_tokens": st.integers() | JSON}) | JSON})


def readable(c: Completion) -> None:
    c.model_dump_json().encode("utf-8")


@MANY
@given(st.binary(max_size=200), st.sampled_from(["application/json", "text/html", ""]))
def test_random_bytes_as_a_body(data: bytes, content_type: str) -> None:
    try:
        readable(parse_body(data, content_type, WHERE))
    except ModelError as err:
        str(err).encode("utf-8")


@SHAPED
@given(BODY | JSON)
def test_random_json_as_a_body(value: Any) -> None:
    try:
        readable(parse_body(json.dumps(value).encode(), "application/json", WHERE))
    except ModelError as err:
        str(err).encode("utf-8")


@SHAPED
@given(st.lists(BODY | JSON, max_size=4))
def test_random_json_as_stream_chunks(values: list[Any]) -> None:
    assembler = StreamAssembler(WHERE)
    try:
        for v in values:
            assembler.feed(json.dumps(v).encode()).encode("utf-8")
        readable(assembler.completion())
    except ModelError as err:
        str(err).encode("utf-8")


@settings(MANY, max_examples=2_000)
@given(st.lists(st.binary(max_size=30) | st.sampled_from([b"\n", b"\r\n", b"data: ", b"data:x\n\n"]), max_size=12))
def test_sse_framing_of_random_bytes_keeps_every_data_byte_in_order(parts: list[bytes]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for p in parts:
            yield p

    async def collect() -> list[bytes]:
        return [d async for d in sse_data(chunks())]

    # Nothing in it ever waits, so one step runs the coroutine to the end (an event loop per example is slow).
    step = collect()
    try:
        step.send(None)
        raise AssertionError("sse_data waited on something")
    except StopIteration as done:
        events: list[bytes] = done.value
    whole = b"".join(parts)
    assert sum(len(e) for e in events) <= len(whole)
    for e in events:
        for line in e.split(b"\n"):
            assert line in whole


class _Transport:
    """Stands in for a socket transport under `h1.Connection`: records writes, closes on abort."""

    def __init__(self) -> None:
        self.closing = False

    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


HEADS = [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
         b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\n",
         b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"HTTP/1.1 500 X\r\ncontent-length: 0\r\n\r\n"]
KINDS = {"too_large", "head_too_large", "encoding", "not_http", "broken", "closed"}


@settings(MANY, max_examples=3_000)  # an event loop per example: 10,000 took 22 s on the loaded machine
@given(st.sampled_from(HEADS), st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=6), st.booleans())
def test_random_reply_bytes_end_as_a_reply_or_a_failure(head: bytes, tail: bytes, cuts: list[int],
                                                         reset: bool) -> None:
    # The HTTP framing (`h1.Connection` on llhttp) fed any bytes, in any pieces, then the connection's end:
    # a whole reply within the cap, or one of the named failures; never an exception.
    from qwenkit.llm._openai import h1

    data = head + tail
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]

    async def scenario() -> h1.Connection:
        conn = h1.Connection(64, h1.Pool("127.0.0.1", 1, None, 64, 1))
        transport = _Transport()
        conn.connection_made(transport)
        conn.begin(b"POST / HTTP/1.1\r\n\r\n")
        for piece in pieces:
            if transport.closing:  # an aborted transport delivers nothing more
                break
            conn.data_received(piece)
        conn.connection_lost(ConnectionResetError("reset") if reset else None)
        return conn

    conn = asyncio.run(scenario())
    assert conn.complete != (conn.failure is not None)
    assert conn.failure is None or conn.failure in KINDS
    if conn.complete:
        assert conn.status >= 200 and len(conn.body()) <= 64
