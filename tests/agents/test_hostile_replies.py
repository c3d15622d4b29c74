"""Hostile model replies end in a result or an observation: never a traceback, never an unwritable transcript."""

from __future__ import annotations

import json
from pathlib import Path

from qwenkit import Agent, tool
from qwenkit.agents.transcript import load_transcript
from qwenkit.testing import ScriptedModel
from qwenkit.types import Completion, ToolCall, ToolMessage


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


async def test_lone_surrogates_from_the_model_are_replaced_and_noted(tmp_path: Path) -> None:
    bad = '<tool_call>\n{"name": "echo", "arguments": {"text": "a\ud800b"}}\n</tool_call>'
    path = tmp_path / "t.jsonl"
    agent = Agent(ScriptedModel([bad, "answer \udfff"]), tools=[echo])
    result = await agent.arun("go", transcript=path)
    assert result.status == "completed" and result.answer == "answer \ufffd"
    obs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert obs == ["a\ufffdb"]
    result.model_dump_json().encode("utf-8")  # encodable everywhere
    turns = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if '"assistant_turn"' in x]
    assert any("lone surrogates" in p for t in turns for p in t["problems"])


def _deep(n: int) -> object:
    value: object = 1
    for _ in range(n):
        value = [value]
    return value


async def test_over_deep_native_arguments_become_an_observation(tmp_path: Path) -> None:
    deep_call = ToolCall(name="echo", arguments={"text": _deep(300)})
    model = ScriptedModel([Completion(tool_calls=(deep_call,), finish_reason="tool_calls"), "gave up"])
    path = tmp_path / "t.jsonl"
    result = await Agent(model, tools=[echo], format="native").arun("go", transcript=path)
    assert result.status == "completed" and result.answer == "gave up"
    obs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert len(obs) == 1 and "nested deeper" in obs[0]
    assert load_transcript(path).finished is not None  # the transcript holds it, and reads back
    json.loads(result.model_dump_json())
