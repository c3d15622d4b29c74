"""`OpenAICompatible` against a real llama.cpp server (``python -m llama_cpp.server``) on the default GGUF."""

from __future__ import annotations

import pytest

from qwenkit.agents.agent import Agent
from qwenkit.llm.base import ChatRequest, Sampling
from qwenkit.llm.openai_compat import OpenAICompatible
from qwenkit.tools import tool
from qwenkit.types import AssistantMessage, ToolMessage, UserMessage
from tests.servers.conftest import Server

pytestmark = pytest.mark.llama


@pytest.fixture
def model(llama_server: Server) -> OpenAICompatible:
    return OpenAICompatible(llama_server.model, llama_server.base_url, timeout=300, max_retries=0)


def _req(*messages: UserMessage | AssistantMessage, max_tokens: int = 32, stop: list[str] | None = None) -> ChatRequest:
    return ChatRequest(messages=list(messages), stop=stop or [], sampling=Sampling(max_tokens=max_tokens))


def test_server_starts_fast(llama_server: Server) -> None:
    assert llama_server.started_in < 60, f"llama.cpp server took {llama_server.started_in:.1f} s to start"


async def test_plain_chat(model: OpenAICompatible) -> None:
    done = await model.complete(_req(UserMessage(content="What is the capital of France? One word.")))
    assert "Paris" in done.text
    assert done.finish_reason == "stop"
    assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0


async def test_streaming(model: OpenAICompatible) -> None:
    chunks = [c async for c in model.stream(_req(UserMessage(content="Write a haiku about rivers.")))]
    final = chunks[-1].completion
    assert final is not None and len(chunks) > 5
    assert "".join(c.delta for c in chunks[:-1]) == final.text


async def test_stop_words(model: OpenAICompatible) -> None:
    done = await model.complete(_req(UserMessage(content="Count from 1 to 20, separated by commas."),
                                     max_tokens=80, stop=["7"]))
    assert done.text.startswith("1, 2, 3") and "7" not in done.text
    assert done.finish_reason == "stop"


async def test_assistant_message_with_empty_content(model: OpenAICompatible, llama_server: Server) -> None:
    history = (UserMessage(content="Hi"), AssistantMessage(content=""), UserMessage(content="What is 2 + 2?"))
    done = await model.complete(_req(*history, max_tokens=16))
    assert "4" in done.text
    # Why to_wire never sends null: this server refuses it.
    status, body = llama_server.post("/chat/completions", {
        "model": llama_server.model, "max_tokens": 4,
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None},
                     {"role": "user", "content": "2 + 2?"}],
    })
    assert status >= 400 and "valid string" in str(body)


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: First factor.
        b: Second factor.
    """
    return a * b


async def test_agent_loop_through_the_server(model: OpenAICompatible) -> None:
    agent = Agent(model, tools=[multiply], format="nous", max_steps=3, sampling=Sampling(max_tokens=128))
    result = await agent.arun("What is 1234 * 5678? Use the multiply tool.")
    assert result.status in ("completed", "max_steps"), result.error
    assert result.usage.completion_tokens > 0
    # Every call that ran gave the product; a repeat of the same call is answered from that result.
    assert all(m.content == "7006652" or m.content.startswith("You already called multiply")
               for m in result.messages if isinstance(m, ToolMessage))
