"""Qwen3 thinking, structured output and reasoning replies through `OpenAICompatible` (scripted HTTP server)."""

from __future__ import annotations

from typing import Any

import pytest

from qwenkit.llm import ChatRequest, OpenAICompatible, Sampling, UserMessage
from tests.llm.stub_server import Reply, StubServer, chat_body, chunk


def model(server: StubServer) -> OpenAICompatible:
    return OpenAICompatible("qwen3", server.base_url, backoff=0.01)


def request(**kw: Any) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content="hi")], **kw)


@pytest.mark.parametrize("thinking", [True, False])
async def test_thinking_is_sent_as_a_chat_template_switch(thinking: bool) -> None:
    async with StubServer([Reply(body=chat_body("ok"))]) as srv:
        await model(srv).complete(request(thinking=thinking))
    assert srv.requests[0]["chat_template_kwargs"] == {"enable_thinking": thinking}


async def test_thinking_none_sends_no_switch() -> None:
    async with StubServer([Reply(body=chat_body("ok"))]) as srv:
        await model(srv).complete(request())
    assert "chat_template_kwargs" not in srv.requests[0] and "response_format" not in srv.requests[0]


async def test_thinking_is_merged_with_the_users_template_kwargs() -> None:
    extra = {"chat_template_kwargs": {"custom": 1, "enable_thinking": True}, "top_k": 5}
    async with StubServer([Reply(body=chat_body("ok"))]) as srv:
        await model(srv).complete(request(thinking=False, sampling=Sampling(extra_body=extra)))
    sent = srv.requests[0]
    assert sent["chat_template_kwargs"] == {"custom": 1, "enable_thinking": False} and sent["top_k"] == 5
    assert extra["chat_template_kwargs"] == {"custom": 1, "enable_thinking": True}  # the caller's dict is untouched


async def test_response_format_is_sent() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    async with StubServer([Reply(body=chat_body("{}"))]) as srv:
        await model(srv).complete(request(response_format=fmt))
    assert srv.requests[0]["response_format"] == fmt


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_is_read_apart_from_the_text(field: str) -> None:
    body = chat_body("The answer is 4.")
    body["choices"][0]["message"][field] = "2 + 2 = 4"
    async with StubServer([Reply(body=body)]) as srv:
        done = await model(srv).complete(request(thinking=True))
    assert done.text == "The answer is 4." and done.reasoning == "2 + 2 = 4"


async def test_reasoning_that_is_not_text_is_ignored_and_lone_surrogates_are_cleaned() -> None:
    odd = chat_body("a")
    odd["choices"][0]["message"]["reasoning_content"] = {"not": "text"}
    dirty = chat_body("b")
    dirty["choices"][0]["message"]["reasoning"] = "x\ud800y"
    async with StubServer([Reply(body=odd), Reply(body=dirty)]) as srv:
        first = await model(srv).complete(request())
        second = await model(srv).complete(request())
    assert first.text == "a" and first.reasoning == ""
    assert second.reasoning == "x\ufffdy"


async def test_reasoning_streams_as_its_own_deltas() -> None:
    sse = [chunk({"role": "assistant", "reasoning_content": "Let me "}), chunk({"reasoning_content": "think."}),
           chunk({"reasoning": " More."}), chunk({"content": "Four"}), chunk({"content": "."}), chunk({}, "stop")]
    async with StubServer([Reply(sse=sse)]) as srv:
        parts = [c async for c in model(srv).stream(request(thinking=True))]
    assert [(c.reasoning, c.delta) for c in parts[:-1]] == [("Let me ", ""), ("think.", ""), (" More.", ""),
                                                             ("", "Four"), ("", ".")]
    done = parts[-1].completion
    assert done is not None and done.reasoning == "Let me think. More." and done.text == "Four."
