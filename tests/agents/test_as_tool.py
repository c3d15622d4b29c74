"""An agent used as a tool: its answer is the observation, its events nest, its usage adds up."""

from __future__ import annotations

import json
from pathlib import Path

from qwenkit import Agent, tool
from qwenkit.agents.events import NestedEvent, RunFinished, RunStarted
from qwenkit.agents.transcript import load_transcript
from qwenkit.testing import ScriptedModel
from qwenkit.types import ToolMessage


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


@tool
def square(x: int) -> int:
    """Square."""
    return x * x


async def test_the_inner_answer_is_the_observation_and_events_nest(tmp_path: Path) -> None:
    inner_model = ScriptedModel([call("square", x=12), "144"])
    coder = Agent(inner_model, tools=[square], name="coder")
    outer_model = ScriptedModel([call("coder", task="square 12"), "It is 144."])
    planner = Agent(outer_model, tools=[coder.as_tool("coder", "Does arithmetic with tools.")], name="planner")
    events = [e async for e in planner.stream("What is 12 squared?", transcript=tmp_path / "t.jsonl")]
    result = events[-1].result  # type: ignore[union-attr]
    assert result.answer == "It is 144."
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["144"]
    nested = [e for e in events if isinstance(e, NestedEvent)]
    assert nested and all(e.tool_name == "coder" for e in nested)
    inner_start = next(e.event for e in nested if isinstance(e.event, RunStarted))
    assert inner_start.conversation_id != result.conversation_id
    inner_result = next(e.event.result for e in nested if isinstance(e.event, RunFinished))
    # Usage adds up: the outer run's tokens are its own two replies' plus the inner run's.
    own = sum(max(1, len(text) // 4) for text in (call("coder", task="square 12"), "It is 144."))
    assert inner_result.usage.completion_tokens > 0
    assert result.usage.completion_tokens == own + inner_result.usage.completion_tokens
    assert load_transcript(tmp_path / "t.jsonl").finished is not None  # nested events round-trip


async def test_the_inner_agents_own_max_steps_applies() -> None:
    inner = Agent(ScriptedModel([call("square", x=2)] * 5), tools=[square], max_steps=2,
                  final_answer_at_max_steps=False)
    outer = Agent(ScriptedModel([call("inner", task="loop"), "gave up"]), tools=[inner.as_tool("inner", "x")])
    result = await outer.arun("go")
    obs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert "status max_steps" in obs[0] and result.answer == "gave up"
