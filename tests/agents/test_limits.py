"""Usage limits end a run at the right point with status ``limit``; resuming with larger limits finishes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit import Agent, tool
from qwenkit.agents.limits import UsageLimits
from qwenkit.testing import ScriptedModel

RAN: list[int] = []


@tool
def step(n: int) -> int:
    """One step of work."""
    RAN.append(n)
    return n


def call(n: int) -> str:
    return f'<tool_call>\n{json.dumps({"name": "step", "arguments": {"n": n}})}\n</tool_call>'


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


async def test_max_model_calls_then_resume_with_a_larger_limit(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    model = ScriptedModel([call(1), call(2), call(3), "done"])
    agent = Agent(model, tools=[step], limits=UsageLimits(max_model_calls=2))
    result = await agent.arun("go", transcript=path)
    assert result.status == "limit" and "max_model_calls (2)" in (result.error or "")
    assert result.steps == 2 and RAN == [1, 2]
    finished = await agent.aresume(path, limits=UsageLimits(max_model_calls=10))
    assert finished.status == "completed" and finished.answer == "done" and RAN == [1, 2, 3]
    assert finished.steps == 4


async def test_max_tool_calls_stops_before_a_turn_that_would_pass_it() -> None:
    model = ScriptedModel([call(1), call(2) + "\n" + call(3), "done"])
    agent = Agent(model, tools=[step], limits=UsageLimits(max_tool_calls=2))
    result = await agent.arun("go")
    assert result.status == "limit" and "max_tool_calls (2)" in (result.error or "")
    assert RAN == [1] and result.tool_calls == 1  # the two-call turn would pass the limit: none of it ran
    finished = await agent.aresume(result, limits=UsageLimits(max_tool_calls=5))
    assert finished.status == "completed" and RAN == [1, 2, 3] and finished.tool_calls == 3


async def test_token_limits_are_checked_before_each_model_call() -> None:
    model = ScriptedModel([call(1), call(2), "done"])
    result = await Agent(model, tools=[step], limits=UsageLimits(max_output_tokens_total=1)).arun("go")
    assert result.status == "limit" and "max_output_tokens_total" in (result.error or "") and result.steps == 1
    model = ScriptedModel([call(1), "done"])
    result = await Agent(model, tools=[step], limits=UsageLimits(max_input_tokens_total=0)).arun("go")
    assert result.status == "limit" and result.steps == 0 and model.requests == []


async def test_wall_time_limit() -> None:
    result = await Agent(ScriptedModel(["x"]), limits=UsageLimits(max_wall_seconds=0)).arun("go")
    assert result.status == "limit" and "max_wall_seconds" in (result.error or "")


def test_a_negative_limit_is_a_value_error() -> None:
    for field in ("max_model_calls", "max_tool_calls", "max_input_tokens_total", "max_output_tokens_total",
                  "max_wall_seconds"):
        with pytest.raises(ValueError, match=field):
            UsageLimits(**{field: -1})
