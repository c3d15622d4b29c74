"""Loop hygiene for small models: a call repeated right after its result is not run again; an empty final
reply is asked for once more and otherwise ends with its own status."""

from __future__ import annotations

import json

from qwenkit import Agent, tool
from qwenkit.agents.events import OutputRetry
from qwenkit.testing import ScriptedModel
from qwenkit.types import ToolMessage

RUNS: list[str] = []


@tool
def compute(expr: str) -> str:
    """Compute."""
    RUNS.append(expr)
    return "1591"


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


async def test_an_identical_call_right_after_its_result_is_answered_from_the_earlier_result() -> None:
    RUNS.clear()
    same = call("compute", expr="37*43")
    model = ScriptedModel([same, same, "37*43 = 1591"])
    result = await Agent(model, tools=[compute]).arun("37*43?")
    assert RUNS == ["37*43"]  # ran once
    obs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert obs[0] == "1591" and "already called compute" in obs[1] and "1591" in obs[1]
    assert result.status == "completed" and result.answer == "37*43 = 1591"
    # Nothing new was asked for: the next call withheld the tools and asked for the answer.
    assert "<tools>" in model.requests[1].messages[0].content
    assert "<tools>" not in model.requests[2].messages[0].content
    assert "Do not call any tool" in model.requests[2].messages[-1].content


def test_a_chain_of_repeats_quotes_the_real_result_not_an_earlier_notice() -> None:
    from qwenkit.agents._tool_calls import REPEAT_NOTICE, repeated_calls
    from qwenkit.types import AssistantMessage, ToolCall, UserMessage

    def turn(i: int) -> tuple[AssistantMessage, ToolMessage]:
        c = ToolCall(id=f"c{i}", name="compute", arguments={"expr": "x"})
        content = "REAL RESULT" if i == 0 else f"{REPEAT_NOTICE} compute ... REAL RESULT ..."
        return AssistantMessage(tool_calls=(c,)), ToolMessage(tool_call_id=c.id, name="compute", content=content)

    msgs: list = [UserMessage(content="q")]
    for i in range(3):
        msgs.extend(turn(i))
    new = ToolCall(id="c9", name="compute", arguments={"expr": "x"})
    msgs.append(AssistantMessage(tool_calls=(new,)))
    assert repeated_calls(msgs, [new]) == {"c9": "REAL RESULT"}


async def test_a_different_call_or_a_new_question_still_runs() -> None:
    RUNS.clear()
    model = ScriptedModel([call("compute", expr="1"), call("compute", expr="2"), "done"])
    await Agent(model, tools=[compute]).arun("go")
    assert RUNS == ["1", "2"]
    RUNS.clear()
    agent = Agent(ScriptedModel([call("compute", expr="1"), "a", call("compute", expr="1"), "b"]), tools=[compute])
    first = await agent.arun("q1")
    await agent.arun("q2", history=first.messages)  # a new user turn: the same call is meant again
    assert RUNS == ["1", "1"]


async def test_the_guard_can_be_turned_off() -> None:
    RUNS.clear()
    same = call("compute", expr="x")
    await Agent(ScriptedModel([same, same, "ok"]), tools=[compute], repeated_call_guard=False).arun("go")
    assert RUNS == ["x", "x"]


async def test_an_empty_answer_is_asked_for_once_more() -> None:
    model = ScriptedModel(["", "The answer is 4."])
    agent = Agent(model)
    events = [e async for e in agent.stream("2+2?")]
    assert any(isinstance(e, OutputRetry) for e in events)
    result = events[-1].result  # type: ignore[union-attr]
    assert result.status == "completed" and result.answer == "The answer is 4."
    assert "empty" in model.requests[1].messages[-1].content


async def test_an_answer_that_stays_empty_ends_with_its_own_status() -> None:
    result = await Agent(ScriptedModel(["", "  "])).arun("2+2?")
    assert result.status == "empty_answer" and result.error and result.answer == ""


async def test_retrying_an_empty_answer_can_be_turned_off() -> None:
    model = ScriptedModel(["", "never asked"])
    result = await Agent(model, retry_empty_answer=False).arun("2+2?")
    assert result.status == "empty_answer" and len(model.requests) == 1
