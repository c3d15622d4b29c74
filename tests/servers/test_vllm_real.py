"""One real tool call through vLLM (CPU): the default Qwen2.5-Coder-0.5B, its GGUF converted to safetensors."""

from __future__ import annotations

import pytest

from qwenkit.agents.agent import Agent
from qwenkit.llm.base import ChatRequest, Sampling
from qwenkit.llm.openai_compat import OpenAICompatible
from qwenkit.tools import tool
from qwenkit.types import ToolMessage, UserMessage
from tests.servers.conftest import Server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUESTION = "What is 1234 * 5678? Use the multiply tool."


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: First factor.
        b: Second factor.
    """
    return a * b


@pytest.fixture
def model(vllm_real_server: Server) -> OpenAICompatible:
    return OpenAICompatible(vllm_real_server.model, vllm_real_server.base_url, timeout=300, max_retries=0)


def test_server_came_up(vllm_real_server: Server) -> None:
    assert vllm_real_server.process.poll() is None
    print(f"vLLM (CPU, Qwen2.5-Coder-0.5B bf16) answered /health after {vllm_real_server.started_in:.1f} s")


async def test_real_model_answers(model: OpenAICompatible) -> None:
    done = await model.complete(ChatRequest(messages=[UserMessage(content="What is the capital of France?")],
                                            sampling=Sampling(max_tokens=24)))
    assert "Paris" in done.text


async def test_real_tool_call_through_vllm(model: OpenAICompatible) -> None:
    tools = [multiply.spec.openai_schema()]
    done = await model.complete(ChatRequest(messages=[UserMessage(content=QUESTION)], tools=tools,
                                            tool_choice="required", sampling=Sampling(max_tokens=64)))
    assert [c.name for c in done.tool_calls] == ["multiply"]
    assert done.tool_calls[0].arguments == {"a": 1234, "b": 5678}


async def test_agent_runs_the_real_call(model: OpenAICompatible) -> None:
    agent = Agent(model, tools=[multiply], format="native", tool_choice="required", max_steps=2,
                  sampling=Sampling(max_tokens=64))
    result = await agent.arun(QUESTION)
    observations = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert observations and observations[0] == "7006652", result
