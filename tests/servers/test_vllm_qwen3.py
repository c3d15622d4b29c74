"""Qwen3 through a real vLLM (CPU) server: thinking, the reasoning split, template probing, native calls.

The server (``vllm_qwen3_server`` in conftest.py) serves a tiny random ``Qwen3ForCausalLM`` with Qwen3's
published chat template (tests/servers/data/PROVENANCE) and ``--reasoning-parser qwen3 --tool-call-parser
hermes``. Random weights write random tokens, so these tests check the protocol, not answers.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from qwenkit.agents.agent import Agent
from qwenkit.llm._openai.wire import request_params
from qwenkit.llm.base import ChatRequest, Sampling
from qwenkit.llm.openai_compat import OpenAICompatible
from qwenkit.tools import tool
from qwenkit.types import ToolMessage, UserMessage
from tests.servers.conftest import Server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}


@pytest.fixture
def model(vllm_qwen3_server: Server) -> OpenAICompatible:
    return OpenAICompatible(vllm_qwen3_server.model, vllm_qwen3_server.base_url, timeout=120, max_retries=0)


def _req(thinking: bool | None, **kw: Any) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content="What is 2 + 2?")], thinking=thinking,
                       sampling=Sampling(temperature=0.0, seed=1, max_tokens=24), **kw)


def _root_post(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    root = server.base_url.removesuffix("/v1")
    req = urllib.request.Request(root + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def test_server_came_up(vllm_qwen3_server: Server) -> None:
    assert vllm_qwen3_server.process.poll() is None
    print(f"vLLM (CPU, tiny Qwen3, reasoning parser qwen3) answered /health after "
          f"{vllm_qwen3_server.started_in:.1f} s")


@pytest.mark.parametrize("thinking", [True, False])
def test_the_thinking_switch_we_send_changes_the_rendered_prompt(vllm_qwen3_server: Server, thinking: bool) -> None:
    """What `OpenAICompatible` sends for ``thinking`` reaches Qwen3's template: the prompt differs."""
    params = request_params(vllm_qwen3_server.model, _req(thinking))
    body = {"model": vllm_qwen3_server.model, "messages": params["messages"], "add_generation_prompt": True}
    switched = _root_post(vllm_qwen3_server, "/tokenize", {**body, **params["extra_body"]})
    default = _root_post(vllm_qwen3_server, "/tokenize", body)
    text = _root_post(vllm_qwen3_server, "/detokenize", {"model": vllm_qwen3_server.model,
                                                         "tokens": switched["tokens"]})["prompt"]
    if thinking:  # Qwen3 thinks by default: the same prompt
        assert switched["tokens"] == default["tokens"] and "<think>" not in text
    else:  # an empty thinking block closes it in advance
        assert switched["tokens"] != default["tokens"]
        assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


async def test_a_thinking_reply_comes_back_split(model: OpenAICompatible) -> None:
    done = await model.complete(_req(True))
    # The template leaves <think> open; everything the model wrote before a </think> is reasoning.
    assert done.reasoning and done.finish_reason == "length"
    assert "<think>" not in done.text and "</think>" not in done.text


async def test_without_thinking_the_reply_is_all_text(model: OpenAICompatible) -> None:
    done = await model.complete(_req(False))
    assert done.reasoning == "" and done.text and done.finish_reason == "length"


async def test_reasoning_streams_as_its_own_deltas(model: OpenAICompatible) -> None:
    whole = await model.complete(_req(True))
    chunks = [c async for c in model.stream(_req(True))]
    final = chunks[-1].completion
    assert final is not None and final.reasoning == whole.reasoning and final.text == whole.text
    assert "".join(c.reasoning for c in chunks[:-1]) == whole.reasoning
    assert sum(1 for c in chunks if c.reasoning) > 1


async def test_template_info_sees_qwen3s_tool_format_thinking_and_context(model: OpenAICompatible,
                                                                         vllm_qwen3_server: Server) -> None:
    info = await model.template_info()
    assert info is not None
    assert info.source == f"vLLM /tokenize at {vllm_qwen3_server.base_url.removesuffix('/v1')}"
    assert info.probe_render is not None
    assert '<tool_call>\n{"name": "qwenkit_probe_tool", "arguments": {"probe_arg": "qwenkit_probe_value"}}\n' \
           '</tool_call>' in info.probe_render
    assert "<tool_response>\nqwenkit probe result\n</tool_response>" in info.probe_render
    assert info.thinking is True and info.max_input_tokens == 4096
    assert await model.template_info() is info  # cached


async def test_count_tokens_matches_the_servers_prompt_tokens(model: OpenAICompatible) -> None:
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    count = await model.count_tokens(messages, None)
    done = await model.complete(_req(None, stop=[]))
    assert count is not None and count == done.usage.prompt_tokens


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First number.
        b: Second number.
    """
    return a + b


async def test_a_native_tool_call_goes_through_the_agent(model: OpenAICompatible) -> None:
    # Thinking off: vLLM forces the named call right away instead of after the (random) reasoning.
    sampling = Sampling(temperature=1.0, seed=1, max_tokens=64, extra_body=NO_THINKING)
    agent = Agent(model, tools=[add], format="native", tool_choice="add", max_steps=2, sampling=sampling)
    result = await agent.arun("What is 2 + 3?")
    assert result.error is None and result.steps >= 1
    observations = [m for m in result.messages if isinstance(m, ToolMessage)]
    # The server's hermes parser returned a call named add; the loop ran it or reported its random arguments.
    assert observations and all(m.name == "add" for m in observations)
