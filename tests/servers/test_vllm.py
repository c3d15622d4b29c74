"""`OpenAICompatible` and the agent loop against a real vLLM (CPU) server with a tiny random Qwen2.

The model has random weights and writes random tokens, so these tests check the protocol (streaming,
stop words, seeds, token limits, native tool calls, errors), not the answers. One server serves the
whole session (see ``vllm_server`` in conftest.py).
"""

from __future__ import annotations

import pytest

from qwenkit.agents.agent import Agent
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest, Sampling
from qwenkit.llm.openai_compat import OpenAICompatible
from qwenkit.tools import tool
from qwenkit.types import AssistantMessage, ToolMessage, UserMessage
from tests.servers.conftest import Server

pytestmark = pytest.mark.vllm

TOOLS = [{"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]},
}}, {"type": "function", "function": {
    "name": "ping", "description": "Check the service.", "parameters": {"type": "object", "properties": {}},
}}]


@pytest.fixture
def model(vllm_server: Server) -> OpenAICompatible:
    return OpenAICompatible(vllm_server.model, vllm_server.base_url, timeout=120, max_retries=0)


def _req(
    text: str = "Hello", *, temperature: float = 0.0, seed: int = 0, max_tokens: int = 16,
    stop: list[str] | None = None, **kw: object,
) -> ChatRequest:
    return ChatRequest(
        messages=[UserMessage(content=text)], stop=stop or [],
        sampling=Sampling(temperature=temperature, seed=seed, max_tokens=max_tokens), **kw,  # type: ignore[arg-type]
    )


def test_server_came_up(vllm_server: Server) -> None:
    assert vllm_server.process.poll() is None
    print(f"vLLM (CPU, tiny Qwen2) answered /health after {vllm_server.started_in:.1f} s")


async def test_plain_chat_honours_max_tokens(model: OpenAICompatible) -> None:
    done = await model.complete(_req(max_tokens=5))
    assert done.usage.completion_tokens == 5 and done.finish_reason == "length"
    assert done.usage.prompt_tokens > 5  # the chat template wrapped the message
    assert done.tool_calls == ()


async def test_streaming_matches_the_whole_reply(model: OpenAICompatible) -> None:
    req = _req(temperature=1.0, seed=11, max_tokens=12)
    chunks = [c async for c in model.stream(req)]
    final = chunks[-1].completion
    assert final is not None and len(chunks) > 2
    assert "".join(c.delta for c in chunks[:-1]) == final.text
    assert final.usage.completion_tokens == 12  # usage arrives in the stream (stream_options)
    assert final.text == (await model.complete(req)).text


async def test_same_seed_same_text(model: OpenAICompatible) -> None:
    first = await model.complete(_req(temperature=1.0, seed=5, max_tokens=16))
    assert (await model.complete(_req(temperature=1.0, seed=5, max_tokens=16))).text == first.text
    others = {(await model.complete(_req(temperature=1.0, seed=s, max_tokens=16))).text for s in (6, 7, 8)}
    assert others != {first.text}


async def test_stop_word_cuts_the_reply_and_is_reported(model: OpenAICompatible) -> None:
    base = await model.complete(_req(temperature=1.0, seed=3, max_tokens=40))
    text = base.text
    assert len(text) > 10
    word = text[len(text) // 2 : len(text) // 2 + 2]
    cut = await model.complete(_req(temperature=1.0, seed=3, max_tokens=40, stop=[word]))
    assert cut.text == text[: text.index(word)]
    assert cut.stop_word == word and cut.finish_reason == "stop"
    streamed = [c async for c in model.stream(_req(temperature=1.0, seed=3, max_tokens=40, stop=[word]))]
    assert "".join(c.delta for c in streamed[:-1]) == cut.text


async def test_continue_final_is_accepted(model: OpenAICompatible) -> None:
    req = ChatRequest(messages=[UserMessage(content="Q"), AssistantMessage(content="Thought: I")],
                      continue_final=True, sampling=Sampling(max_tokens=4))
    done = await model.complete(req)
    assert done.usage.completion_tokens == 4


async def test_native_tools_with_a_named_tool_choice(model: OpenAICompatible) -> None:
    done = await model.complete(_req(tools=TOOLS, tool_choice="add", max_tokens=64))
    assert [c.name for c in done.tool_calls] == ["add"]
    assert done.tool_calls[0].raw_arguments  # random arguments, but the call itself is parsed


async def test_native_tools_with_tool_choice_required(model: OpenAICompatible) -> None:
    # Forced calls repeat until max_tokens with random weights; the stop word ends the first one.
    done = await model.complete(_req(tools=TOOLS, tool_choice="required", max_tokens=64, stop=["</tool_call>"]))
    assert len(done.tool_calls) == 1 and done.tool_calls[0].name in ("add", "ping")
    assert done.finish_reason == "tool_calls"


async def test_streamed_native_tool_call(model: OpenAICompatible) -> None:
    chunks = [c async for c in model.stream(_req(tools=TOOLS, tool_choice="ping", max_tokens=64))]
    final = chunks[-1].completion
    assert final is not None and [c.name for c in final.tool_calls] == ["ping"]


async def test_wrong_model_name_is_a_clean_model_error(vllm_server: Server) -> None:
    wrong = OpenAICompatible("no-such-model", vllm_server.base_url, max_retries=0)
    with pytest.raises(ModelError, match="has no model 'no-such-model'"):
        await wrong.complete(_req())
    with pytest.raises(ModelError, match="has no model 'no-such-model'"):
        [c async for c in wrong.stream(_req())]


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First number.
        b: Second number.
    """
    return a + b


@pytest.mark.parametrize(("fmt", "choice"), [("react", None), ("qwen", None), ("nous", None), ("native", None),
                                             ("native", "required"), ("native", "add")])
async def test_every_prompt_format_end_to_end(model: OpenAICompatible, fmt: str, choice: str | None) -> None:
    sampling = Sampling(temperature=1.0, seed=1, max_tokens=48)
    agent = Agent(model, tools=[add], format=fmt, tool_choice=choice, max_steps=2, sampling=sampling)
    result = await agent.arun("What is 2 + 3?")
    assert result.status in ("completed", "max_steps"), result.error
    assert result.error is None and result.steps >= 1
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    observations = [m for m in result.messages if isinstance(m, ToolMessage)]
    if choice == "add":  # the server forced the call, so the loop ran the tool (or reported bad arguments)
        assert observations and all(m.name == "add" for m in observations)


async def test_typed_output_uses_structured_output_and_validates(model: OpenAICompatible) -> None:
    from typing import Literal

    from pydantic import BaseModel

    class Reading(BaseModel):  # no free-text fields: random weights would write a string until max_tokens
        level: Literal["low", "high"]
        ok: bool

    # Random weights write random tokens; vLLM's structured output forces them into the schema.
    agent = Agent(model, format="native", output_type=Reading, output_retries=0,
                  sampling=Sampling(max_tokens=256, temperature=0.0))
    result = await agent.arun("Give a reading.")
    assert result.status == "completed", result.error
    assert isinstance(result.output, Reading)


async def test_template_info_renders_the_probe_with_qwen25s_tool_format(model: OpenAICompatible,
                                                                        vllm_server: Server) -> None:
    info = await model.template_info()
    assert info is not None and info.source == f"vLLM /tokenize at {vllm_server.base_url.removesuffix('/v1')}"
    assert info.probe_render is not None
    assert '<tool_call>\n{"name": "qwenkit_probe_tool", "arguments": {"probe_arg": "qwenkit_probe_value"}}\n' \
           '</tool_call>' in info.probe_render
    assert '"name": "qwenkit_probe_tool", "description": "A probe tool."' in info.probe_render  # the tool list
    assert info.thinking is False  # Qwen2.5's template has no enable_thinking switch
    assert info.max_input_tokens == 4096  # --max-model-len
    count = await model.count_tokens([{"role": "user", "content": "Hello"}], None)
    done = await model.complete(_req(max_tokens=1))
    assert count == done.usage.prompt_tokens
