"""Qwen3 thinking in every format: reasoning split from the answer, calls inside it never run."""

from __future__ import annotations

import pytest

from qwenkit.llm.formats import NativeFormat, get_format
from qwenkit.llm.formats.base import CALLS_IN_THINKING, keep_recent_reasoning
from qwenkit.types import AssistantMessage, Completion, ToolCall, ToolMessage, UserMessage

CALLS = {
    "nous": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
    "qwen": '✿FUNCTION✿: f\n✿ARGS✿: {"a": 1}',
    "react": 'Action: f\nAction Input: {"a": 1}',
    "qwen3_coder": "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>",
    "native": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
}
TEXT_FORMATS = sorted(CALLS)


@pytest.mark.parametrize("name", TEXT_FORMATS)
@pytest.mark.parametrize("opening", ["<think>\n", ""])  # "": Qwen3's template opened <think> itself
def test_reasoning_is_split_from_the_call(name: str, opening: str) -> None:
    reply = get_format(name).parse(f"{opening}I should call f.\n</think>\n\n{CALLS[name]}")
    assert "I should call f." in reply.reasoning
    assert [c.name for c in reply.tool_calls] == ["f"]
    assert "I should call f" not in reply.content


@pytest.mark.parametrize("name", TEXT_FORMATS)
def test_reasoning_is_split_from_the_answer(name: str) -> None:
    reply = get_format(name).parse("Hmm, 2+2.\n</think>\n\nFinal Answer: 4" if name == "react"
                                   else "Hmm, 2+2.\n</think>\n\nIt is 4.")
    assert reply.reasoning.startswith("Hmm, 2+2.") and "4" in reply.content and not reply.tool_calls


@pytest.mark.parametrize("name", [n for n in TEXT_FORMATS if n != "react"])  # ReAct's thoughts are its reasoning
def test_calls_inside_thinking_are_not_run(name: str) -> None:
    reply = get_format(name).parse(f"<think>\nMaybe {CALLS[name]}\n</think>\n\nNo call needed: 4.")
    assert reply.tool_calls == [] and "No call needed" in reply.content
    assert CALLS_IN_THINKING in reply.problems


@pytest.mark.parametrize("name", TEXT_FORMATS)
def test_server_reasoning_becomes_reasoning(name: str) -> None:
    """vLLM ``--reasoning-parser qwen3`` returns the thinking as ``reasoning_content``, apart from the text."""
    reply = get_format(name).parse_completion(Completion(text=CALLS[name], reasoning="Call f with 1."))
    assert reply.reasoning.startswith("Call f with 1.") and [c.name for c in reply.tool_calls] == ["f"]
    tricky = get_format(name).parse_completion(Completion(text="4", reasoning=f"Maybe {CALLS[name]}"))
    assert tricky.tool_calls == []
    if name != "react":
        assert CALLS_IN_THINKING in tricky.problems


def test_native_server_calls_keep_server_reasoning() -> None:
    call = ToolCall(name="f", arguments={"a": 1})
    reply = NativeFormat().parse_completion(Completion(tool_calls=(call,), reasoning="Use f."))
    assert reply.reasoning == "Use f." and reply.tool_calls[0].name == "f"


def test_reasoning_before_the_last_query_is_dropped() -> None:
    call = ToolCall(id="a", name="f", arguments={})
    messages = [
        UserMessage(content="Q1"), AssistantMessage(content="A1", reasoning="old"),
        UserMessage(content="Q2"), AssistantMessage(reasoning="new\n", tool_calls=(call,)),
        ToolMessage(tool_call_id="a", name="f", content="r"),
        UserMessage(content="<tool_response>\nr2\n</tool_response>"),  # tool responses are not a query
        AssistantMessage(content="done", reasoning=""),
    ]
    out = keep_recent_reasoning(messages)
    assert out[1] == AssistantMessage(content="A1")
    assert out[3] == AssistantMessage(content="<think>\nnew\n</think>\n\n", tool_calls=(call,))
    assert out[6] == AssistantMessage(content="done")
    assert messages[1].reasoning == "old"  # the input is not changed
