"""The public test models in `qwenkit.testing`: ScriptedModel, FunctionModel and TestModel."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel

from qwenkit.agents.agent import Agent
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest
from qwenkit.llm.formats import get_format
from qwenkit.testing import FunctionModel, ScriptedModel, TestModel, example_arguments
from qwenkit.tools import tool
from qwenkit.types import Completion, ToolCall, ToolMessage, UserMessage


def _req(text: str = "hi", stop: Sequence[str] = ()) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content=text)], stop=list(stop))


# ScriptedModel.


async def test_scripted_model_replays_in_order_and_cuts_at_stop_words() -> None:
    model = ScriptedModel(["one STOP two", "second"])
    first = await model.complete(_req(stop=["STOP"]))
    assert (first.text, first.stop_word) == ("one ", "STOP")
    chunks = [c async for c in model.stream(_req())]
    assert "".join(c.delta for c in chunks[:-1]) == "second" and chunks[-1].completion is not None
    assert len(model.requests) == 2
    with pytest.raises(ModelError, match="ran out of replies after 2"):
        await model.complete(_req())


async def test_assert_all_used_lists_the_unused_replies() -> None:
    model = ScriptedModel(["a", "b", Completion(text="c")])
    await model.complete(_req())
    assert model.unused == ["b", Completion(text="c")]
    with pytest.raises(AssertionError, match=r"2 of 3 scripted replies were not used: #2: 'b'; #3: 'c'"):
        model.assert_all_used()
    await model.complete(_req())
    await model.complete(_req())
    model.assert_all_used()  # nothing left: passes


async def test_context_manager_checks_on_a_clean_exit_only() -> None:
    with pytest.raises(AssertionError, match="1 of 2"), ScriptedModel(["a", "b"]) as model:
        await model.complete(_req())
    # The block's own error is not masked by the check.
    with pytest.raises(ValueError, match="the block's own error"), ScriptedModel(["a"]):
        raise ValueError("the block's own error")
    async with ScriptedModel(["a"]) as model:
        await model.complete(_req())
    with pytest.raises(AssertionError, match="1 of 1"):
        async with ScriptedModel(["a"]):
            pass


async def test_strict_checks_when_closed() -> None:
    lax, strict = ScriptedModel(["a"]), ScriptedModel(["a"], strict=True)
    await lax.aclose()
    assert lax.closed
    with pytest.raises(AssertionError, match="were not used"):
        await strict.aclose()
    await strict.complete(_req())
    await strict.aclose()  # idempotent, and passes once everything was used
    assert strict.closed


def test_scripted_agent_run_uses_every_reply() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add.

        Args:
            a: First.
            b: Second.
        """
        return a + b

    with ScriptedModel(['<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>', "3"]) as m:
        result = Agent(m, tools=[add], format="nous").run("1+2?")
    assert result.answer == "3"


async def test_function_model_sees_the_request_and_closes() -> None:
    async def reply(request: ChatRequest) -> str:
        return f"{len(request.messages)} message(s). END more"

    model = FunctionModel(reply)
    done = await model.complete(_req(stop=["END"]))
    assert done.text == "1 message(s). " and done.stop_word == "END"
    assert not model.closed
    await model.aclose()
    assert model.closed


# example_arguments.


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: float = 0.5


class Shape(BaseModel):
    name: str
    colour: Colour
    corners: list[Point]
    tags: list[str] = []
    label: str | None = None
    origin: Point | None


def test_example_arguments_fill_required_fields_by_type() -> None:
    args = example_arguments(Shape.model_json_schema())  # $defs, enums, nested objects and arrays
    assert set(args) == {"name", "colour", "corners", "origin"}  # required only
    assert args["colour"] == "red" and args["name"] == "a"
    assert args["corners"] == [{"x": 0}] and args["origin"] == {"x": 0}
    Shape.model_validate(args)  # and pydantic accepts them


@pytest.mark.parametrize(("schema", "value"), [
    ({"type": "integer", "minimum": 3, "maximum": 9}, 3),
    ({"type": "integer", "exclusiveMinimum": 3}, 4),
    ({"type": "integer", "maximum": -2}, -2),
    ({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 2}, 1.5),
    ({"type": "number"}, 0.0),
    ({"type": "string", "minLength": 3}, "aaa"),
    ({"type": "string", "format": "date"}, "2024-01-01"),
    ({"type": "boolean"}, False),
    ({"type": ["null", "integer"]}, 0),
    ({"anyOf": [{"type": "null"}, {"type": "string"}]}, "a"),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [0, 0]),
    ({"type": "array", "maxItems": 0}, []),
    ({"const": "fixed"}, "fixed"),
    ({"type": "string", "default": "dflt"}, "dflt"),
])
def test_example_values_respect_the_schema(schema: dict[str, Any], value: Any) -> None:
    got = example_arguments({"type": "object", "properties": {"v": schema}, "required": ["v"]})["v"]
    assert got == value and type(got) is type(value)


def test_a_recursive_schema_ends() -> None:
    schema = {"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}},
                                 "required": ["next"]}},
              "type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}, "required": ["root"]}
    depth, node = 0, example_arguments(schema)["root"]
    while isinstance(node, dict):
        depth, node = depth + 1, node["next"]
    assert 3 < depth < 20


# TestModel.


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First.
        b: Second.
    """
    return a + b + 40


@tool
def describe(shape: Shape, loud: bool = False) -> str:
    """Describe a shape.

    Args:
        shape: The shape.
        loud: Shout.
    """
    return f"{shape.colour.value} {shape.name} with {len(shape.corners)} corner(s)"


@pytest.mark.parametrize("name", ["nous", "qwen", "react", "native"])
async def test_test_model_calls_every_tool_then_answers(name: str) -> None:
    model = TestModel(name, tools=[add, describe])
    result = await Agent(model, tools=[add, describe], format=name, max_steps=3).arun("Go.")
    assert result.status == "completed", result.error
    results = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [m.name for m in results] == ["add", "describe"]
    assert results[0].content == "40" and results[1].content == "red a with 1 corner(s)"  # valid arguments ran
    answer = json.loads(result.answer)
    assert answer["called"] == ["add", "describe"]
    assert "40" in " ".join(answer["observations"]) and "red a" in " ".join(answer["observations"])
    assert len(model.requests) == 2
    if name == "native":
        assert model.requests[0].tools is not None and answer["observations"] == ["40", "red a with 1 corner(s)"]
    else:
        assert model.requests[0].tools is None


async def test_native_test_model_needs_no_tools_argument() -> None:
    model = TestModel("native", call_tools=["describe"], final_text="done")
    result = await Agent(model, tools=[add, describe], format="native").arun("Go.")
    assert [m.name for m in result.messages if isinstance(m, ToolMessage)] == ["describe"]
    assert result.answer == "done"
    first = await TestModel("native").complete(model.requests[0])
    assert [c.name for c in first.tool_calls] == ["add", "describe"] and first.finish_reason == "tool_calls"


async def test_test_model_text_reply_is_the_formats_call_text() -> None:
    fmt = get_format("nous")
    reply = await TestModel(fmt, tools=[add]).complete(_req())
    assert reply.text == fmt.render_calls([ToolCall(name="add", arguments={"a": 0, "b": 0})])  # type: ignore[attr-defined]
    parsed = fmt.parse(reply.text)
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("add", {"a": 0, "b": 0})]
    assert reply.tool_calls == ()


async def test_test_model_without_tools_answers_and_refuses_unknown_names() -> None:
    reply = await TestModel("nous").complete(_req())
    assert json.loads(reply.text) == {"called": [], "observations": []}
    with pytest.raises(ModelError, match=r"asked to call \['nope'\]"):
        await TestModel("nous", tools=[add], call_tools=["nope"]).complete(_req())
    model = TestModel("nous")
    await model.aclose()
    assert model.closed


def test_every_test_model_is_a_chat_model() -> None:
    from qwenkit.llm.base import ChatModel

    async def reply(request: ChatRequest) -> str:
        return ""

    for model in (ScriptedModel([]), FunctionModel(reply), TestModel("nous")):
        assert isinstance(model, ChatModel)
