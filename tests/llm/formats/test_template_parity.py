"""Exact by construction: qwenkit's text formats write what the real Qwen chat templates write.

The comparison, for each conversation (typed qwenkit messages ``M`` and tools ``T``):

- **reference**: the real chat template (``tests/data/templates``, sources in ``PROVENANCE.md``) renders
  the equivalent OpenAI-style request — ``M`` as chat-template messages (tool calls as
  ``tool_calls``, results as ``role: tool``, reasoning as ``reasoning_content``) with ``tools=T`` —
  as vLLM or transformers would for a server's native tool calling;
- **qwenkit**: the format renders ``M`` and ``T`` into plain messages (tools in the system text, calls
  and results in the turns' text), and the same template renders those with no ``tools``, as it would
  when qwenkit sends them to a server without a tool parser (or the embedded backend renders them).

Both are the full prompt strings (``add_generation_prompt=True``) and must be equal to the character.
Known, stated differences are asserted as such below (Qwen2.5's default system text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qwenkit.llm.chat_template import render_chat, template_messages
from qwenkit.llm.formats import NousFormat, Qwen3CoderFormat
from qwenkit.llm.formats.base import TextFormat
from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, ToolSpec, UserMessage

TEMPLATES = Path(__file__).parents[2] / "data" / "templates"

FACTORIAL = ToolSpec(
    name="math.factorial",
    description="Compute n! for a non-negative integer n.",
    parameters={"type": "object", "properties": {"n": {"type": "integer", "description": "A number."}},
                "required": ["n"]},
)
WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather in a city. ",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": ["integer", "null"], "minimum": 1},
            "options": {"type": "object", "properties": {"hourly": {"type": "boolean"}}},
        },
        "required": ["city"],
    },
)
TOOLS = [FACTORIAL, WEATHER]

F5 = ToolCall(id="call_1", name="math.factorial", arguments={"n": 5})
PARIS = ToolCall(id="call_2", name="get_weather",
                 arguments={"city": "Paris", "unit": "celsius", "days": 2, "options": {"hourly": True}})
BEIJING = ToolCall(id="call_3", name="get_weather", arguments={"city": "北京", "unit": "celsius"})
SYSTEM = SystemMessage(content="You are a helpful assistant.")

CONVERSATIONS: dict[str, list[Message]] = {
    "one_call": [SYSTEM, UserMessage(content="What is 5!?"), AssistantMessage(tool_calls=(F5,)),
                 ToolMessage(tool_call_id="call_1", name="math.factorial", content="120")],
    "parallel_calls": [
        SYSTEM, UserMessage(content="5! and the weather in Paris?"),
        AssistantMessage(content="I will look both up.", tool_calls=(F5, PARIS)),
        ToolMessage(tool_call_id="call_1", name="math.factorial", content="120"),
        ToolMessage(tool_call_id="call_2", name="get_weather", content='{"temp": 18}'),
    ],
    "multi_turn": [
        SYSTEM, UserMessage(content="What is 5!?"), AssistantMessage(tool_calls=(F5,)),
        ToolMessage(tool_call_id="call_1", name="math.factorial", content="120"),
        AssistantMessage(content="5! is 120."), UserMessage(content="And the weather in Paris?"),
        AssistantMessage(content="Checking.", tool_calls=(PARIS,)),
        ToolMessage(tool_call_id="call_2", name="get_weather", content="Sunny, 18 °C"),
        AssistantMessage(content="It is sunny."),
    ],
    "chinese": [
        SystemMessage(content="你是一个乐于助人的助手。"), UserMessage(content="北京今天天气怎么样？"),
        AssistantMessage(content="我来查一下。", tool_calls=(BEIJING,)),
        ToolMessage(tool_call_id="call_3", name="get_weather", content="晴，25 度"),
    ],
}

THINKING: dict[str, list[Message]] = {
    "thinking_tool_loop": [
        UserMessage(content="What is 5!?"),
        AssistantMessage(content="Easy.", reasoning="Old thoughts, dropped.", tool_calls=(F5,)),
        ToolMessage(tool_call_id="call_1", name="math.factorial", content="120"),
        AssistantMessage(content="5! is 120.", reasoning="It returned 120."),
        UserMessage(content="And the weather in Paris, then 5!?"),
        AssistantMessage(reasoning="I need the weather first.\n", tool_calls=(PARIS,)),
        ToolMessage(tool_call_id="call_2", name="get_weather", content="Sunny"),
        AssistantMessage(content="Now 5!.", reasoning="Sunny. Now the factorial.", tool_calls=(F5,)),
        ToolMessage(tool_call_id="call_1", name="math.factorial", content="120"),
    ],
    "thinking_final_answer_last": [
        SYSTEM, UserMessage(content="Hi"), AssistantMessage(content="Hello!", reasoning="A greeting."),
    ],
    "thinking_no_reasoning_in_loop": [
        UserMessage(content="5!?"), AssistantMessage(tool_calls=(F5,)),
        ToolMessage(tool_call_id="call_1", name="math.factorial", content="120"),
        AssistantMessage(content="120", reasoning=""),
    ],
}


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def openai_messages(messages: list[Message], *, reasoning: bool) -> list[dict[str, Any]]:
    """The OpenAI-style request a client would send (reasoning as ``reasoning_content``)."""
    out = template_messages(messages)
    if reasoning:
        for d, m in zip(out, messages, strict=True):
            if isinstance(m, AssistantMessage):
                d["reasoning_content"] = m.reasoning
    return out


def both(fmt: TextFormat, name: str, messages: list[Message], *, reasoning: bool = False,
         kwargs: dict[str, Any] | None = None) -> tuple[str, str]:
    source = template(name)
    reference = render_chat(source, openai_messages(messages, reasoning=reasoning),
                            tools=[t.openai_schema() for t in TOOLS], template_kwargs=kwargs)
    rendered = fmt.render(messages, TOOLS)
    assert not rendered.continue_final
    ours = render_chat(source, template_messages(rendered.messages), template_kwargs=kwargs)
    return reference, ours


@pytest.mark.parametrize("case", sorted(CONVERSATIONS))
@pytest.mark.parametrize("name", ["Qwen2.5-Instruct.jinja", "Qwen3.jinja"])
def test_nous_equals_the_qwen_templates(name: str, case: str) -> None:
    reference, ours = both(NousFormat(), name, CONVERSATIONS[case])
    assert ours == reference


@pytest.mark.parametrize("case", sorted(CONVERSATIONS))
def test_qwen3_coder_equals_its_template(case: str) -> None:
    reference, ours = both(Qwen3CoderFormat(), "Qwen3-Coder.jinja", CONVERSATIONS[case])
    assert ours == reference


def test_qwen3_coder_default_system_text() -> None:
    messages = CONVERSATIONS["one_call"][1:]  # no system message: the template writes its own
    reference, ours = both(Qwen3CoderFormat(), "Qwen3-Coder.jinja", messages)
    assert ours == reference and "You are Qwen, a helpful AI assistant" in ours


def test_qwen3_without_a_system_message() -> None:
    reference, ours = both(NousFormat(), "Qwen3.jinja", CONVERSATIONS["one_call"][1:])
    assert ours == reference and ours.startswith("<|im_start|>system\n# Tools\n\n")


def test_qwen25_default_system_text_is_a_stated_difference() -> None:
    """Without a system message Qwen2.5's template writes "You are Qwen, created by Alibaba Cloud. You are a
    helpful assistant." before the tools; nous (like Qwen-Agent) adds no default system text."""
    reference, ours = both(NousFormat(), "Qwen2.5-Instruct.jinja", CONVERSATIONS["one_call"][1:])
    default = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n"
    assert ours != reference and reference.replace(default, "", 1) == ours


@pytest.mark.parametrize("thinking", [None, True, False])
@pytest.mark.parametrize("case", sorted(THINKING))
def test_thinking_renders_equal_qwen3s(case: str, thinking: bool | None) -> None:
    kwargs = None if thinking is None else {"enable_thinking": thinking}
    reference, ours = both(NousFormat(), "Qwen3.jinja", THINKING[case], reasoning=True, kwargs=kwargs)
    assert ours == reference
    assert "Old thoughts" not in ours and "It returned 120" not in ours  # before the last query: dropped


def test_thinking_after_the_last_query_is_kept() -> None:
    _, ours = both(NousFormat(), "Qwen3.jinja", THINKING["thinking_tool_loop"], reasoning=True)
    assert "<think>\nI need the weather first.\n</think>\n\n<tool_call>" in ours
    assert "<think>\nSunny. Now the factorial.\n</think>\n\nNow 5!.\n<tool_call>" in ours


def test_qwen3_coder_tool_results_and_thinking() -> None:
    reference, ours = both(Qwen3CoderFormat(), "Qwen3-Coder.jinja", THINKING["thinking_no_reasoning_in_loop"])
    assert ours == reference
