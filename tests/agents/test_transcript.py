"""Transcripts are written as the run goes, and a killed run resumes without redoing finished work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit import Agent, tool
from qwenkit.agents.events import ToolCallEvent, ToolResultEvent
from qwenkit.agents.transcript import load_transcript, read_events
from qwenkit.llm.testing import ScriptedModel

CALLS: list[int] = []


@tool
def square(x: int) -> int:
    """x squared."""
    CALLS.append(x)
    return x * x


def call(x: int) -> str:
    return f'<tool_call>\n{{"name": "square", "arguments": {{"x": {x}}}}}\n</tool_call>'


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


async def test_transcript_is_flushed_per_event(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    agent = Agent(ScriptedModel([call(2), "4"]), tools=[square], format="nous")
    gen = agent.stream("2^2", transcript=path)
    async for event in gen:
        if isinstance(event, ToolResultEvent):
            # written before the run goes on: readable from another reader right now
            types = [json.loads(line)["type"] for line in path.read_text().splitlines()]
            assert types == ["run_started", "assistant_turn", "tool_call", "tool_result"]
    await gen.aclose()
    assert "text_delta" not in path.read_text()


async def test_resume_after_kill_between_results_and_next_step(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    gen = Agent(ScriptedModel([call(3), "never used"]), tools=[square], format="nous").stream("x", transcript=path)
    async for event in gen:
        if isinstance(event, ToolResultEvent):
            break  # the process "dies" here
    await gen.aclose()
    assert CALLS == [3]
    resumed_model = ScriptedModel(["9"])
    result = await Agent(resumed_model, tools=[square], format="nous").aresume(path)
    assert result.status == "completed" and result.answer == "9" and result.steps == 2
    assert CALLS == [3]  # the tool was not run again
    assert len(resumed_model.requests) == 1  # only the missing step was asked for


async def test_resume_runs_only_the_calls_without_results(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    two_calls = call(4) + "\n" + call(5)
    gen = Agent(ScriptedModel([two_calls]), tools=[square], format="nous").stream("x", transcript=path)
    async for event in gen:
        if isinstance(event, ToolCallEvent):
            break  # died after the model's turn, before any result was recorded
    await gen.aclose()
    CALLS.clear()
    result = await Agent(ScriptedModel(["done"]), tools=[square], format="nous").aresume(path)
    assert result.answer == "done" and sorted(CALLS) == [4, 5]
    contents = [m.content for m in result.messages if m.role == "tool"]
    assert contents == ["16", "25"]


async def test_resume_of_finished_run_redoes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    first = await Agent(ScriptedModel([call(2), "4"]), tools=[square], format="nous").arun("x", transcript=path)
    model = ScriptedModel([])
    again = await Agent(model, tools=[square], format="nous").aresume(path)
    assert again == first and model.requests == [] and CALLS == [2]


async def test_truncated_last_line_is_ignored_but_corruption_elsewhere_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    await Agent(ScriptedModel([call(2), "4"]), tools=[square], format="nous").arun("x", transcript=path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    state = load_transcript(path)  # the answer was recorded, only run_finished was cut
    assert state.finished is not None and state.finished.answer == "4" and state.steps_done == 2
    path.write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:20])  # cut inside the final assistant turn
    state = load_transcript(path)
    assert state.finished is None and state.steps_done == 1
    path.write_text("garbage\n" + "\n".join(lines))
    with pytest.raises(ValueError, match="not a qwenkit transcript event"):
        read_events(path)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no run_started"):
        load_transcript(tmp_path / "empty.jsonl")
