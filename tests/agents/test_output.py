"""Typed outputs: the schema in the prompt, forgiving parsing, validation errors sent back, a retry budget."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from qwenkit import Agent, ConfigError, ModelRetry, tool
from qwenkit.agents.events import OutputRetry
from qwenkit.testing import ScriptedModel
from qwenkit.types import SystemMessage


class City(BaseModel):
    name: str
    population: int


@dataclass
class Point:
    x: float
    y: float


class Pair(TypedDict):
    a: int
    b: str


async def test_a_valid_answer_becomes_the_typed_output() -> None:
    model = ScriptedModel(['```json\n{"name": "Paris", "population": 2100000}\n```'])
    result = await Agent(model, output_type=City).arun("Biggest French city?")
    assert result.status == "completed" and result.output == City(name="Paris", population=2100000)
    system = model.requests[0].messages[0]
    assert isinstance(system, SystemMessage) and '"population"' in system.content  # the schema was shown


async def test_a_bad_answer_goes_back_with_the_errors_then_succeeds() -> None:
    model = ScriptedModel(['{"name": "Paris"}', "{name: 'Paris', population: 5,}"])  # then JSON5
    agent = Agent(model, output_type=City)
    events = [e async for e in agent.stream("city?")]
    retries = [e for e in events if isinstance(e, OutputRetry)]
    assert len(retries) == 1 and "population" in retries[0].errors
    assert "population" in model.requests[1].messages[-1].content  # the model saw what was wrong
    result = events[-1].result  # type: ignore[union-attr]
    assert result.status == "completed" and result.output.population == 5


async def test_an_answer_that_never_validates_ends_output_invalid() -> None:
    model = ScriptedModel(["not json at all"] * 3)
    result = await Agent(model, output_type=City, output_retries=2).arun("city?")
    assert result.status == "output_invalid" and result.output is None
    assert "City" in (result.error or "") and len(model.requests) == 3  # 1 answer + 2 retries


@pytest.mark.parametrize("fmt", ["nous", "qwen", "react", "native"])
async def test_typed_output_through_each_format(fmt: str) -> None:
    if fmt == "qwen":
        # The model continues the prefilled ✿RETURN✿.
        replies = ['✿FUNCTION✿: add\n✿ARGS✿: {"a": 1, "b": 2}', ': {"x": 3, "y": 0.5}']
    elif fmt == "react":
        replies = ['Thought: add\nAction: add\nAction Input: {"a": 1, "b": 2}',
                   'Thought: done\nFinal Answer: {"x": 3, "y": 0.5}']
    else:
        replies = ['<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>', '{"x": 3, "y": 0.5}']
    if fmt == "native":
        from qwenkit.types import Completion, ToolCall

        replies = [Completion(tool_calls=(ToolCall(name="add", arguments={"a": 1, "b": 2}),)),  # type: ignore[list-item]
                   '{"x": 3, "y": 0.5}']

    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    result = await Agent(ScriptedModel(replies), tools=[add], format=fmt, output_type=Point).arun("p?")
    assert result.status == "completed" and result.output == Point(x=3, y=0.5), result


async def test_native_without_tools_asks_for_structured_output() -> None:
    model = ScriptedModel(['{"a": 1, "b": "x"}'])
    result = await Agent(model, format="native", output_type=Pair).arun("pair?")
    assert result.output == {"a": 1, "b": "x"}
    rf = model.requests[0].response_format
    assert rf is not None
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"]["required"] == ["a", "b"]


async def test_lists_and_ints_and_a_validator() -> None:
    assert (await Agent(ScriptedModel(["[1, 2, 3]"]), output_type=list[int]).arun("n")).output == [1, 2, 3]
    assert (await Agent(ScriptedModel(["42"]), output_type=int).arun("n")).output == 42

    def positive(v: int) -> int:
        if v <= 0:
            raise ModelRetry("the number must be positive")
        return v

    model = ScriptedModel(["-1", "7"])
    result = await Agent(model, output_type=int, output_validator=positive).arun("n")
    assert result.output == 7 and "must be positive" in model.requests[1].messages[-1].content


async def test_typed_output_survives_a_transcript_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    agent = Agent(ScriptedModel(['{"name": "Rome", "population": 3}']), output_type=City)
    await agent.arun("city?", transcript=path)
    again = await agent.aresume(path)  # finished: the recorded result, typed again
    assert again.output == City(name="Rome", population=3)
    assert json.loads(path.read_text().splitlines()[-1])["result"]["output"]["name"] == "Rome"


def test_an_output_type_pydantic_cannot_describe_is_a_config_error() -> None:
    class Opaque:
        pass

    with pytest.raises(ConfigError, match="Opaque"):
        Agent(ScriptedModel([]), output_type=Opaque)
