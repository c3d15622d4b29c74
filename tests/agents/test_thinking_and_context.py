"""Qwen3 thinking streamed apart from the answer, the thinking switch sent, and the context window kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qwenkit import Agent, tool
from qwenkit.agents._think_stream import ThinkSplitter
from qwenkit.agents.events import ContextTrimmed, ReasoningDelta, TextDelta
from qwenkit.llm.template_info import TemplateInfo
from qwenkit.testing import ScriptedModel
from qwenkit.types import ToolMessage


@pytest.mark.parametrize("pieces", [["<think>abc</think>\n\nAnswer"], list("<think>abc</think>\n\nAnswer"),
                                    ["<thi", "nk>a", "bc</th", "ink>\n\nAns", "wer"]])
def test_the_splitter_labels_thinking_and_answer_whatever_the_chunking(pieces: list[str]) -> None:
    s = ThinkSplitter()
    out = [p for piece in pieces for p in s.push(piece)] + s.flush()
    reasoning = "".join(t for k, t in out if k == "reasoning")
    answer = "".join(t for k, t in out if k == "answer")
    assert (reasoning, answer) == ("abc", "Answer")


def test_only_a_closing_tag_with_thinking_on_and_plain_text_without() -> None:
    s = ThinkSplitter(thinking_open=True)  # the template opened <think> itself
    out = s.push("hmm, 2+2") + s.push("=4</think>\n\nIt is 4.") + s.flush()
    assert "".join(t for k, t in out if k == "reasoning") == "hmm, 2+2=4"
    assert "".join(t for k, t in out if k == "answer") == "It is 4."
    plain = ThinkSplitter()
    assert plain.push("<b>bold</b>") + plain.flush() == [("answer", "<b>bold</b>")]


async def test_thinking_streams_as_its_own_events_and_the_switch_is_sent() -> None:
    model = ScriptedModel(["<think>let me see</think>\n\nFour."])
    events = [e async for e in Agent(model, thinking=False).stream("2+2?")]
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "let me see"
    assert "let me see" not in "".join(e.text for e in events if isinstance(e, TextDelta))
    assert model.requests[0].thinking is False


class WindowModel(ScriptedModel):
    """A scripted model that tells its context window, like a GGUF or vLLM would."""

    async def template_info(self) -> TemplateInfo:
        return TemplateInfo(source="a test", max_input_tokens=600)


@tool
def dump(n: int) -> str:
    """A tool with a long observation."""
    return "x" * n


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


async def test_a_conversation_that_would_not_fit_is_cut_and_the_event_says_so() -> None:
    from qwenkit.llm.base import Sampling

    model = WindowModel([call("dump", n=3000), "short answer", "second answer"])
    agent = Agent(model, tools=[dump], sampling=Sampling(max_tokens=100))
    first = await agent.arun("first question")
    events = [e async for e in agent.stream("second question", history=first.messages)]
    trims = [e for e in events if isinstance(e, ContextTrimmed)]
    assert trims and trims[0].tokens_before > trims[0].budget == 500 and trims[0].estimated
    last_prompt = model.requests[-1].messages
    text = " ".join(m.content for m in last_prompt)
    assert "second question" in text  # the latest user turn is kept
    assert "x" * 1000 not in text  # the old observation was shortened or dropped
    assert last_prompt[0].role == "system" and "dump" in last_prompt[0].content  # tools kept
    # The record keeps everything: only the prompt was cut.
    final = events[-1].result  # type: ignore[union-attr]
    assert any(isinstance(m, ToolMessage) and len(m.content) == 3000 for m in final.messages)


async def test_no_window_no_trimming() -> None:
    model = ScriptedModel([call("dump", n=30000), "ok"])
    events: list[Any] = [e async for e in Agent(model, tools=[dump]).stream("go")]
    assert not any(isinstance(e, ContextTrimmed) for e in events)
