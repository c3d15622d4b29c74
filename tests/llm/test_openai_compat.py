"""OpenAICompatible against a real HTTP server on 127.0.0.1 that answers as scripted."""

from __future__ import annotations

import socket
import time

import pytest

from qwenkit.llm import (
    AssistantMessage,
    ChatRequest,
    ModelError,
    OpenAICompatible,
    Sampling,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from qwenkit.llm.openai_compat import to_wire
from tests.llm.stub_server import Reply, StubServer, chat_body, chunk

REQ = ChatRequest(messages=[UserMessage(content="hi")], stop=["✿RESULT✿"],
                  sampling=Sampling(temperature=0.0, seed=7, max_tokens=32, extra_body={"top_k": 1}))


def model(server: StubServer, **kw: object) -> OpenAICompatible:
    return OpenAICompatible("qwen", server.base_url, backoff=0.01, **kw)  # type: ignore[arg-type]


async def test_complete_sends_sampling_and_reads_reply() -> None:
    async with StubServer([Reply(body=chat_body("hello", stop_reason="✿RESULT✿"))]) as srv:
        c = await model(srv).complete(REQ)
    assert c.text == "hello" and c.stop_word == "✿RESULT✿" and c.finish_reason == "stop"
    assert c.usage.prompt_tokens == 7 and c.usage.completion_tokens == 3
    sent = srv.requests[0]
    assert sent["model"] == "qwen" and sent["seed"] == 7 and sent["temperature"] == 0.0
    assert sent["stop"] == ["✿RESULT✿"] and sent["max_tokens"] == 32 and sent["top_k"] == 1
    assert "tools" not in sent and "continue_final_message" not in sent


async def test_continue_final_asks_vllm_to_continue_the_assistant_turn() -> None:
    req = ChatRequest(messages=[UserMessage(content="q"), AssistantMessage(content="Thought:")],
                      continue_final=True)
    async with StubServer([Reply(body=chat_body(" ok"))]) as srv:
        await model(srv).complete(req)
    sent = srv.requests[0]
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert sent["messages"][-1] == {"role": "assistant", "content": "Thought:"}


async def test_native_tools_and_tool_choice_named() -> None:
    tools = [{"type": "function", "function": {"name": "math.factorial", "parameters": {"type": "object"}}}]
    req = ChatRequest(messages=[UserMessage(content="5!")], tools=tools, tool_choice="math.factorial")
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "math.factorial", "arguments": "{'n': 5,}"}}]
    async with StubServer([Reply(body=chat_body("", tool_calls=calls, finish="tool_calls"))]) as srv:
        c = await model(srv).complete(req)
    assert srv.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "math.factorial"}}
    assert srv.requests[0]["tools"] == tools
    (call,) = c.tool_calls
    assert call.id == "call_1" and call.name == "math.factorial" and call.arguments == {"n": 5}
    assert call.raw_arguments == "{'n': 5,}" and call.arguments_error is None


def test_wire_format_of_assistant_and_tool_messages() -> None:
    a = AssistantMessage(content="", tool_calls=(ToolCall(id="c1", name="f", arguments={"x": 1}),))
    assert to_wire(a) == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]}
    assert to_wire(ToolMessage(tool_call_id="c1", name="f", content="2")) == {
        "role": "tool", "tool_call_id": "c1", "content": "2"}


async def test_retries_429_and_5xx_then_succeeds() -> None:
    replies = [Reply(429, {"error": {"message": "slow down"}}), Reply(503, {"error": {"message": "busy"}}),
               Reply(body=chat_body("finally"))]
    async with StubServer(replies) as srv:
        c = await model(srv, max_retries=3).complete(REQ)
    assert c.text == "finally" and len(srv.requests) == 3


async def test_gives_up_after_max_retries_with_clear_error() -> None:
    async with StubServer([Reply(500, {"error": {"message": "boom"}})] * 5) as srv:
        with pytest.raises(ModelError, match="HTTP 500"):
            await model(srv, max_retries=2).complete(REQ)
    assert len(srv.requests) == 3


async def test_other_4xx_are_not_retried() -> None:
    async with StubServer([Reply(400, {"error": {"message": "bad stop"}}), Reply(body=chat_body("x"))]) as srv:
        with pytest.raises(ModelError, match=r"HTTP 400: .*bad stop"):
            await model(srv).complete(REQ)
    assert len(srv.requests) == 1


async def test_unknown_model_is_a_clear_error() -> None:
    body = {"error": {"message": "The model `qwen` does not exist.", "type": "NotFoundError", "code": 404}}
    async with StubServer([Reply(404, body)]) as srv:
        with pytest.raises(ModelError, match="has no model 'qwen'"):
            await model(srv).complete(REQ)
    assert len(srv.requests) == 1


async def test_server_down_is_retried_with_backoff_then_clear_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = OpenAICompatible("qwen", f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.05, max_backoff=0.1)
    start = time.perf_counter()
    with pytest.raises(ModelError, match="cannot reach the model server"):
        await m.complete(REQ)
    assert time.perf_counter() - start >= 0.05  # it did back off between attempts


async def test_request_timeout_is_enforced() -> None:
    async with StubServer([Reply(body=chat_body("late"), delay=2.0)]) as srv:
        m = OpenAICompatible("qwen", srv.base_url, timeout=0.3, max_retries=0)
        start = time.perf_counter()
        with pytest.raises(ModelError, match="did not answer in time"):
            await m.complete(REQ)
        assert time.perf_counter() - start < 1.5


async def test_stream_yields_deltas_and_assembles_tool_calls() -> None:
    sse = [
        chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                               "function": {"name": "get_", "arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": 'ty": "Paris"}'}}]}),
        chunk({}, finish="tool_calls"),
        {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
         "usage": {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}},
    ]
    async with StubServer([Reply(sse=sse)]) as srv:
        chunks = [c async for c in model(srv).stream(REQ)]
    assert [c.delta for c in chunks[:-1]] == ["Hel", "lo"]
    final = chunks[-1].completion
    assert final is not None and final.text == "Hello" and final.finish_reason == "tool_calls"
    assert final.tool_calls[0].name == "get_weather" and final.tool_calls[0].arguments == {"city": "Paris"}
    assert final.usage.completion_tokens == 5
    assert srv.requests[0]["stream"] is True and srv.requests[0]["stream_options"] == {"include_usage": True}


def test_repaired_arguments_are_sent_back_as_strict_json() -> None:
    sloppy = ToolCall(id="c1", name="f", arguments={"n": 5}, raw_arguments="{'n': 5,}")
    exact = ToolCall(id="c2", name="f", arguments={"n": 5}, raw_arguments='{"n":5}')
    wire = to_wire(AssistantMessage(tool_calls=(sloppy, exact)))
    assert [c["function"]["arguments"] for c in wire["tool_calls"]] == ['{"n": 5}', '{"n":5}']


async def test_null_usage_fields_do_not_break_a_reply() -> None:
    body = chat_body("ok")
    body["usage"] = {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    async with StubServer([Reply(body=body)]) as srv:
        c = await model(srv).complete(REQ)
    assert c.text == "ok" and c.usage.total_tokens == 0
