"""Hostile or broken replies from an OpenAI-compatible server (a stub on 127.0.0.1) on both paths.

Whatever the server sends ends as a readable `Completion` or a `ModelError` naming what was wrong:
never a JSONDecodeError, AttributeError, UnicodeDecodeError, RecursionError or unbounded read.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from qwenkit._untrusted import MAX_JSON_DEPTH
from qwenkit.errors import ModelError
from qwenkit.llm import AssistantMessage, ChatRequest, Completion, OpenAICompatible, UserMessage
from qwenkit.llm._openai.reply import TOO_DEEP
from qwenkit.llm.openai_compat import to_wire
from tests.llm.stub_server import Reply, StubServer, chat_body, chunk

REQ = ChatRequest(messages=[UserMessage(content="hi")])


def model(server: StubServer, **kw: object) -> OpenAICompatible:
    return OpenAICompatible("qwen", server.base_url, backoff=0.01, **kw)  # type: ignore[arg-type]


async def complete(reply: Reply, **kw: object) -> tuple[Completion, StubServer]:
    async with StubServer([reply]) as srv:
        return await model(srv, **kw).complete(REQ), srv


async def streamed(reply: Reply, **kw: object) -> Completion:
    async with StubServer([reply]) as srv:
        chunks = [c async for c in model(srv, **kw).stream(REQ)]
    final = chunks[-1].completion
    assert final is not None
    return final


def call_body(arguments: str, name: str = "f") -> dict[str, Any]:
    calls = [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]
    return chat_body("", tool_calls=calls, finish="tool_calls")


BAD_BODIES = [
    pytest.param(Reply(raw=b'{"choices": [', content_type="application/json"), r"not JSON", id="invalid-json"),
    pytest.param(Reply(raw=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
                 r"not JSON .*content type text/html", id="html-200"),
    pytest.param(Reply(raw=b'{"choices": "\xff\xfe"}'), r"not UTF-8 \(byte 13", id="not-utf8"),
    pytest.param(Reply(raw=b"", content_type="application/json"), r"empty reply", id="empty"),
    pytest.param(Reply(body=[1, 2, 3]), r"not a JSON object", id="array"),
    pytest.param(Reply(body={"id": "x"}), r"returned no choices", id="choices-missing"),
    pytest.param(Reply(body={"choices": []}), r"returned no choices", id="choices-empty"),
    pytest.param(Reply(body={"choices": "lots"}), r"not a chat completion: choices: ", id="choices-a-string"),
    pytest.param(Reply(body={"choices": [{"message": {"content": 5}}]}), r"choices\.0\.message\.content",
                 id="content-a-number"),
    pytest.param(Reply(body={"choices": [{"message": {"tool_calls": [{"function": "f"}]}}]}),
                 r"not a chat completion", id="call-a-string"),
    pytest.param(Reply(body={"error": {"message": "out of memory"}}), r"answered with an error: 'out of memory'",
                 id="error-in-a-200"),
    pytest.param(Reply(raw=b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), r"nested too deeply",
                 id="deep-body"),
]


@pytest.mark.parametrize(("reply", "message"), BAD_BODIES)
async def test_unreadable_plain_replies_are_model_errors(reply: Reply, message: str) -> None:
    async with StubServer([reply, Reply(body=chat_body("second"))]) as srv:
        with pytest.raises(ModelError, match=message):
            await model(srv).complete(REQ)
    assert len(srv.requests) == 1  # a broken reply is not retried


BAD_STREAMS = [
    pytest.param(b'data: {"choices": [\n\n', r"stream chunk that is not JSON", id="invalid-json"),
    pytest.param(b'data: {"choices": [{"delta": {"content": "\xff"}}]}\n\n', r"not UTF-8", id="not-utf8"),
    pytest.param(b'data: {"choices": "x"}\n\n', r"not a chat completion", id="choices-a-string"),
    pytest.param(b'data: {"error": {"message": "engine died"}}\n\n', r"error mid-stream: 'engine died'", id="error"),
    pytest.param(b"data: [1]\n\n", r"not a JSON object", id="array"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_STREAMS)
async def test_unreadable_stream_chunks_are_model_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        await streamed(Reply(raw=raw, content_type="text/event-stream"))


async def test_a_stream_in_odd_but_valid_sse_framing_is_read() -> None:
    events = [chunk({"content": "a"}), chunk({"content": "b"}, finish="stop")]
    raw = b": keep-alive comment\r\n\r\nevent: message\r\n"
    raw += b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)
    raw += b"data:[DONE]"  # no space, no final blank line
    final = await streamed(Reply(raw=raw, content_type="text/event-stream"))
    assert final.text == "ab" and final.finish_reason == "stop"


async def test_lone_surrogates_are_replaced_on_the_plain_path(caplog: pytest.LogCaptureFixture) -> None:
    body = call_body('{"path": "a\\ud800b", "\\udfff": 1}\ud83d', name="f\udc00")
    body["choices"][0]["message"]["content"] = "text \ud800 end"
    body["choices"][0]["stop_reason"] = "\udfff"
    c, _ = await complete(Reply(body=body))
    assert c.text == "text \ufffd end" and c.stop_word == "\ufffd"
    (call,) = c.tool_calls
    assert call.name == "f\ufffd" and call.arguments == {"path": "a\ufffdb", "\ufffd": 1}
    assert call.raw_arguments.endswith("\ufffd")
    c.model_dump_json().encode("utf-8")  # the whole completion can be written as UTF-8
    assert "lone surrogates" in caplog.text  # and the replacement was noted


async def test_lone_surrogates_in_a_server_error_message_are_replaced() -> None:
    async with StubServer([Reply(400, {"error": {"message": "bad \ud800 stop"}})]) as srv:
        with pytest.raises(ModelError, match="HTTP 400: bad \ufffd stop") as info:
            await model(srv).complete(REQ)
    str(info.value).encode("utf-8")


async def test_lone_surrogates_are_replaced_on_the_stream_path() -> None:
    sse = [chunk({"content": "x\ud800"}),
           chunk({"tool_calls": [{"index": 0, "id": "c\udfff", "function": {"name": "f",
                                                                           "arguments": '{"k": "\\udbff"}'}}]})]
    async with StubServer([Reply(sse=sse)]) as srv:
        chunks = [c async for c in model(srv).stream(REQ)]
    assert chunks[0].delta == "x\ufffd"
    final = chunks[-1].completion
    assert final is not None and final.text == "x\ufffd"
    assert final.tool_calls[0].id == "c\ufffd" and final.tool_calls[0].arguments == {"k": "\ufffd"}
    final.model_dump_json().encode("utf-8")


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("arguments", [nested(MAX_JSON_DEPTH + 1), nested(1000), "[" * 100_000 + "]" * 100_000,
                                       "{" * 200_000], ids=["limit+1", "1000", "100k-list", "unclosed"])
async def test_deeply_nested_native_arguments_become_an_arguments_error(arguments: str) -> None:
    for c in [(await complete(Reply(body=call_body(arguments))))[0], await streamed(Reply(body=call_body(arguments)))]:
        (call,) = c.tool_calls
        assert call.arguments == {} and call.arguments_error == TOO_DEEP
        assert call.raw_arguments == arguments
        c.model_dump_json()  # and the completion still serialises
        # Sending the call back in the next request must not parse the deep text again.
        wire = to_wire(AssistantMessage(tool_calls=c.tool_calls))
        assert wire["tool_calls"][0]["function"]["arguments"] == "{}"


async def test_arguments_at_the_depth_limit_are_kept() -> None:
    c, _ = await complete(Reply(body=call_body(nested(MAX_JSON_DEPTH - 1))))
    (call,) = c.tool_calls
    assert call.arguments_error is None and call.arguments["a"]["a"]


async def test_a_plain_body_over_the_byte_cap_is_refused() -> None:
    async with StubServer([Reply(body=chat_body("x" * 5000))]) as srv:
        with pytest.raises(ModelError, match="larger than 2000 bytes"):
            await model(srv, max_reply_bytes=2000).complete(REQ)


async def test_an_error_body_over_the_byte_cap_is_refused() -> None:
    # The SDK reads an error body whole before raising; the cap sits under it.
    async with StubServer([Reply(500, {"error": {"message": "x" * 50_000}})]) as srv:
        with pytest.raises(ModelError, match="larger than 2000 bytes"):
            await model(srv, max_reply_bytes=2000).complete(REQ)


async def test_an_endless_stream_is_cut_at_the_byte_cap() -> None:
    event = b"data: " + json.dumps(chunk({"content": "spam"})).encode() + b"\n\n"
    async with StubServer([Reply(forever=event, content_type="text/event-stream")]) as srv:
        n = 0
        with pytest.raises(ModelError, match="larger than 100000 bytes"):
            async for _ in model(srv, max_reply_bytes=100_000).stream(REQ):
                n += 1
    assert 0 < n <= 100_000 // len(event) + 1


async def test_an_endless_line_without_newlines_is_cut_at_the_byte_cap() -> None:
    async with StubServer([Reply(forever=b"x" * 4096, content_type="text/event-stream")]) as srv:
        with pytest.raises(ModelError, match="larger than 1000000 bytes"):
            async for _ in model(srv, max_reply_bytes=1_000_000).stream(REQ):
                pass


async def test_a_compressed_reply_is_refused_and_identity_is_asked_for() -> None:
    async with StubServer([Reply(raw=b"\x1f\x8b" + b"\0" * 30, headers={"content-encoding": "gzip"})]) as srv:
        with pytest.raises(ModelError, match=r"compressed reply \(content-encoding: gzip\)"):
            await model(srv).complete(REQ)
    assert srv.headers[0]["accept-encoding"] == "identity"


async def test_a_deeply_nested_error_object_is_reported_without_recursing() -> None:
    deep: object = "x"
    for _ in range(900):
        deep = {"e": deep}
    with pytest.raises(ModelError, match="nested too deeply to show"):
        await complete(Reply(raw=json.dumps({"error": deep}).encode()))


async def test_streamed_calls_reuse_one_connection() -> None:
    # After [DONE] the rest of the body is read, so the connection goes back to the pool (not one per call).
    replies = [Reply(body=chat_body(f"r{i}")) for i in range(4)]
    async with StubServer(replies) as srv:
        m = model(srv)
        texts = []
        for _ in range(4):
            chunks = [c async for c in m.stream(REQ)]
            completion = chunks[-1].completion
            assert completion is not None
            texts.append(completion.text)
        await m.aclose()
    assert texts == ["r0", "r1", "r2", "r3"]
    assert srv.connections == 1


async def test_a_server_that_goes_on_after_done_is_not_read_for_long() -> None:
    # The drain after [DONE] is bounded (bytes and time): a server that keeps sending costs only its connection.
    piece = json.dumps(chunk({"content": "x"}))
    endless = Reply(forever=f"data: {piece}\n\ndata: [DONE]\n\n".encode(), content_type="text/event-stream")
    async with StubServer([endless]) as srv:
        m = model(srv, timeout=30)
        t0 = time.monotonic()
        chunks = [c async for c in m.stream(REQ)]
        assert time.monotonic() - t0 < 5
        await m.aclose()
    final = chunks[-1].completion
    assert final is not None and final.text == "x"
