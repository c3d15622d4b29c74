"""Transcripts are written as the run goes, and a killed run resumes without redoing finished work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit import Agent, tool
from qwenkit.agents.events import ToolCallEvent, ToolResultEvent
from qwenkit.agents.transcript import load_transcript, read_events
from qwenkit.errors import TranscriptError
from qwenkit.testing import ScriptedModel

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
            break  # the consumer stops while the calls are running
    await gen.aclose()
    # Stopping waits for calls already running and records them: nothing started is lost or redone.
    assert sorted(CALLS) == [4, 5]
    assert [json.loads(x)["type"] for x in path.read_text().splitlines()].count("tool_result") == 2
    # A process killed (SIGKILL) before any result was written: drop the result lines to simulate it.
    lines = [x for x in path.read_text().splitlines() if json.loads(x)["type"] != "tool_result"]
    path.write_text("\n".join(lines) + "\n")
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
    with pytest.raises(TranscriptError, match="not a qwenkit transcript event"):
        read_events(path)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(TranscriptError, match="no run_started"):
        load_transcript(tmp_path / "empty.jsonl")


async def test_resume_twice_after_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    gen = Agent(ScriptedModel([call(2) + "\n" + call(3)]), tools=[square], format="nous").stream(
        "x", transcript=path)
    async for event in gen:
        if isinstance(event, ToolResultEvent):
            break
    await gen.aclose()
    with path.open("a") as fh:
        fh.write('{"type": "tool_res')  # the process died mid-write
    model = ScriptedModel([call(4)])  # runs out after one step: the resumed run ends in error
    first = await Agent(model, tools=[square], format="nous").aresume(path)
    assert first.status == "error"
    second = await Agent(ScriptedModel(["done"]), tools=[square], format="nous").aresume(path)
    assert second.status == "completed" and second.answer == "done"
    assert sorted(CALLS) == [2, 3, 4]  # each tool call ran exactly once over the three processes
    read_events(path)  # still a valid transcript


async def test_slow_consumer_loses_nothing(tmp_path: Path) -> None:
    import asyncio

    from qwenkit.testing import FunctionModel

    path = tmp_path / "t.jsonl"
    replies = iter([call(5), call(6)])

    async def reply(_: object) -> str:
        if (text := next(replies, None)) is not None:
            return text
        await asyncio.sleep(30)  # the third model call is still running when the consumer dies
        return "never used"

    agent = Agent(FunctionModel(reply), tools=[square], format="nous")
    gen = agent.stream("x", transcript=path)
    async for _ in gen:
        await asyncio.sleep(0.3)  # the run goes on while the consumer is slow
        break  # then the consumer dies
    await gen.aclose()
    assert CALLS == [5, 6]
    types = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert types.count("tool_result") == 2  # on disk although the consumer never saw them
    result = await Agent(ScriptedModel(["36"]), tools=[square], format="nous").aresume(path)
    assert result.answer == "36" and CALLS == [5, 6] and result.steps == 3


async def test_final_answer_after_max_steps_is_recorded_and_not_redone(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    model = ScriptedModel([call(2), "It is 4.\n" + call(3)])  # text before a call is the answer
    result = await Agent(model, tools=[square], format="nous", max_steps=1).arun("x", transcript=path)
    assert result.status == "max_steps" and result.answer == "It is 4." and result.steps == 2
    assert result.messages[-1].role == "assistant" and result.messages[-1].content == "It is 4."
    assert CALLS == [2]  # the call inside the last word was dropped
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # died before run_finished
    state = load_transcript(path)
    assert state.finished is not None and state.finished.status == "max_steps" and state.steps_done == 2
    again = await Agent(ScriptedModel([]), tools=[square], format="nous", max_steps=1).aresume(path)
    assert again.answer == "It is 4." and CALLS == [2]


async def test_several_runs_in_one_file_resume_the_last(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    await Agent(ScriptedModel([call(1), call(1), "a"]), tools=[square], format="nous").arun("1", transcript=path)
    gen = Agent(ScriptedModel([call(7)]), tools=[square], format="nous", max_steps=2).stream("2", transcript=path)
    async for event in gen:
        if isinstance(event, ToolResultEvent):
            break
    await gen.aclose()
    state = load_transcript(path)
    assert state.steps_done == 1 and state.finished is None
    result = await Agent(ScriptedModel(["b"]), tools=[square], format="nous", max_steps=2).aresume(path)
    assert result.status == "completed" and result.answer == "b" and result.steps == 2
    assert result.usage.completion_tokens > 0


async def test_tools_are_stopped_before_the_conversation_is_closed() -> None:
    import asyncio

    from qwenkit.tools.base import Tool, ToolContext
    from qwenkit.types import ToolSpec

    log: list[str] = []

    class Stateful(Tool):
        spec = ToolSpec(name="cell")

        async def run(self, args: dict, ctx: ToolContext) -> str:
            log.append("start")
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                log.append("cancelled")
                raise
            return "x"

        async def close_conversation(self, conversation_id: str) -> None:
            log.append("close")

    gen = Agent(ScriptedModel(['<tool_call>\n{"name": "cell", "arguments": {}}\n</tool_call>']),
                tools=[Stateful()], format="nous").stream("go")
    async for event in gen:
        if isinstance(event, ToolCallEvent):
            await asyncio.sleep(0.05)
            break
    await gen.aclose()
    assert log == ["start", "cancelled", "close"]
