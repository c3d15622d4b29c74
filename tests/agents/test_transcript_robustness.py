"""Transcripts survive crashes and misuse: cut UTF-8, corrupt tails, two resumers, and no rewritten history."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qwenkit import Agent, tool
from qwenkit.agents.events import ToolResultEvent
from qwenkit.agents.transcript import TranscriptWriter, load_transcript, read_events
from qwenkit.errors import TranscriptError, TranscriptLocked
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


async def _stopped_after_first_result(path: Path, replies: list[str]) -> None:
    gen = Agent(ScriptedModel(replies), tools=[square]).stream("x", transcript=path)
    async for event in gen:
        if isinstance(event, ToolResultEvent):
            break
    await gen.aclose()


async def test_a_last_line_cut_inside_a_utf8_character_is_skipped_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    await _stopped_after_first_result(path, [call(2)])
    with path.open("ab") as fh:
        fh.write('{"type": "final_answer", "step": 2, "text": "中'.encode()[:-1])  # cut mid-character
    assert load_transcript(path).steps_done == 1  # readable
    result = await Agent(ScriptedModel(["4"]), tools=[square]).aresume(path)
    assert result.answer == "4" and CALLS == [2]
    read_events(path)  # the cut bytes were cut off before appending: the file stays valid


async def test_a_corrupt_last_line_ending_in_a_newline_does_not_poison_the_next_resume(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    await _stopped_after_first_result(path, [call(2)])
    with path.open("a") as fh:
        fh.write('{"type": "tool_res\n')  # a crash mid-line, then a newline from somewhere
    first = await Agent(ScriptedModel([call(3)]), tools=[square]).aresume(path)  # runs out: error
    assert first.status == "error"
    second = await Agent(ScriptedModel(["done"]), tools=[square]).aresume(path)
    assert second.answer == "done" and CALLS == [2, 3]
    assert all(json.loads(x) for x in path.read_text().splitlines())


async def test_a_corrupt_line_in_the_middle_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    await _stopped_after_first_result(path, [call(2)])
    lines = path.read_text().splitlines()
    lines.insert(1, "{not json")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TranscriptError, match=":2: not a qwenkit transcript event"):
        await Agent(ScriptedModel(["x"]), tools=[square]).aresume(path)


async def test_resuming_appends_only_new_events(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    await _stopped_after_first_result(path, [call(2)])
    model = ScriptedModel([call(3)])
    sizes = [path.stat().st_size]
    for _ in range(3):  # each resume fails (the model ran out) and is resumed again
        await Agent(model, tools=[square]).aresume(path)
        sizes.append(path.stat().st_size)
    types = [json.loads(x)["type"] for x in path.read_text().splitlines()]
    assert types.count("run_started") == 1 and types.count("run_resumed") == 3
    # Each resume adds its few events, never the whole conversation again: the conversation (the user's
    # turn "x") is written once, and two identical failed resumes add the same few bytes.
    assert path.read_text().count('"content":"x"') == 1
    assert sizes[3] - sizes[2] == sizes[2] - sizes[1] < 600
    result = await Agent(ScriptedModel(["9"]), tools=[square]).aresume(path)
    assert result.answer == "9" and CALLS == [2, 3]


async def test_a_second_writer_on_the_same_transcript_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    first = TranscriptWriter(path)
    try:
        with pytest.raises(TranscriptLocked, match="in use"):
            TranscriptWriter(path)
        with pytest.raises(TranscriptLocked):
            await Agent(ScriptedModel(["x"])).arun("hi", transcript=path)
    finally:
        first.close()
    TranscriptWriter(path).close()  # free again once the first is closed


RESUMER = textwrap.dedent("""
    import sys, time
    from qwenkit import Agent, tool
    from qwenkit.errors import TranscriptLocked
    from qwenkit.testing import ScriptedModel

    @tool
    def square(x: int) -> int:
        '''x squared.'''
        with open(sys.argv[2], "a") as fh:
            fh.write(f"{x}\\n")
        time.sleep(1.0)  # long enough for the other process to try meanwhile
        return x * x

    try:
        r = Agent(ScriptedModel(["done"]), tools=[square]).resume(sys.argv[1])
        print("resumed", r.answer)
    except TranscriptLocked:
        print("locked")
""")


def test_two_processes_resuming_one_transcript_run_the_pending_call_once(tmp_path: Path) -> None:
    path, ran = tmp_path / "t.jsonl", tmp_path / "ran.txt"
    ran.write_text("")
    gen_agent = Agent(ScriptedModel([call(3)]), tools=[square])
    import asyncio

    async def stop_at_call() -> None:
        from qwenkit.agents.events import AssistantTurn

        gen = gen_agent.stream("x", transcript=path)
        async for event in gen:
            if isinstance(event, AssistantTurn):
                break
        await gen.aclose()

    asyncio.run(stop_at_call())
    # Simulate a crash before the result was written: keep only the lines up to the assistant turn.
    lines = [x for x in path.read_text().splitlines() if json.loads(x)["type"] in ("run_started", "assistant_turn")]
    path.write_text("\n".join(lines) + "\n")
    script = tmp_path / "resume.py"
    script.write_text(RESUMER)
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(ran)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert ran.read_text().split() == ["3"], outs  # the pending call ran once over both processes
    assert outs == ["locked", "resumed done"]
