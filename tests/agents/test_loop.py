"""The agent loop end to end with scripted models and real tools."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from qwenkit import Agent, Sampling, tool
from qwenkit.agents.events import (
    AssistantTurn,
    FinalAnswer,
    RunFinished,
    RunStarted,
    StepError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from qwenkit.agents.loop import LoopConfig, run_loop
from qwenkit.llm.base import ChatRequest
from qwenkit.llm.formats import get_format
from qwenkit.testing import FunctionModel, ScriptedModel
from qwenkit.tools import ToolRegistry
from qwenkit.types import ToolMessage, UserMessage


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


@tool(name="math.factorial")
def factorial(n: int) -> int:
    """Factorial."""
    return 1 if n < 2 else n * factorial.fn(n - 1)


@tool
async def nap(seconds: float, tag: str) -> str:
    """Sleep, then return the tag."""
    await asyncio.sleep(seconds)
    return tag


@tool
def blocking_nap(seconds: float) -> str:
    """A sync tool that blocks its thread."""
    time.sleep(seconds)
    return "done"


def test_tool_call_then_answer_sync_run() -> None:
    model = ScriptedModel([call("math.factorial", n=5), "5! is 120."])
    result = Agent(model, tools=[factorial], format="nous").run("What is 5!?")
    assert result.status == "completed" and result.answer == "5! is 120." and result.steps == 2
    tool_msgs = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_msgs] == ["120"] and tool_msgs[0].name == "math.factorial"
    second_prompt = model.requests[1].messages[-1]
    assert "120" in second_prompt.content  # the observation went back to the model
    assert result.usage.completion_tokens > 0


async def test_parallel_calls_run_concurrently() -> None:
    k, t = 4, 0.5
    reply = "\n".join(call("nap", seconds=t, tag=f"t{i}") for i in range(k))
    agent = Agent(ScriptedModel([reply, "done"]), tools=[nap], format="nous")
    start = time.perf_counter()
    result = await agent.arun("nap 4 times")
    elapsed = time.perf_counter() - start
    assert result.status == "completed"
    assert elapsed < t * k * 0.6, f"{k} calls of {t}s took {elapsed:.2f}s: not concurrent"
    tool_msgs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert tool_msgs == ["t0", "t1", "t2", "t3"]  # results kept in call order


async def test_parallel_sync_tools_run_in_threads() -> None:
    reply = "\n".join(call("blocking_nap", seconds=0.5) for _ in range(3))
    agent = Agent(ScriptedModel([reply, "ok"]), tools=[blocking_nap], format="nous")
    start = time.perf_counter()
    await agent.arun("go")
    assert time.perf_counter() - start < 1.2


async def test_bad_calls_become_observations_and_the_model_retries() -> None:
    model = ScriptedModel([
        call("math.fact", n=5),                      # unknown tool
        '<tool_call>\n{"name": "math.factorial", "arguments": {"n": "five"}}\n</tool_call>',  # invalid arg
        call("math.factorial", n=3),
        "6",
    ])
    result = await Agent(model, tools=[factorial], format="nous").arun("3!")
    assert result.status == "completed" and result.answer == "6"
    obs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert "no tool named 'math.fact'" in obs[0] and "math.factorial" in obs[0]
    assert "invalid arguments" in obs[1] and obs[2] == "6"


async def test_max_steps_status() -> None:
    model = ScriptedModel([call("math.factorial", n=1)] * 3)
    agent = Agent(model, tools=[factorial], format="nous", max_steps=3, final_answer_at_max_steps=False)
    result = await agent.arun("loop")
    assert result.status == "max_steps" and result.steps == 3 and result.answer == ""
    assert len(model.requests) == 3


async def test_out_of_steps_the_model_is_asked_once_more_without_tools() -> None:
    # In the last word the model still writes a call (dropped) after its answer (kept: text before a call).
    model = ScriptedModel([call("math.factorial", n=3)] * 2 + ["It is 6.\n" + call("math.factorial", n=3)])
    events = [e async for e in Agent(model, tools=[factorial], format="nous", max_steps=2).stream("3!")]
    result = events[-1].result  # type: ignore[union-attr]
    assert result.status == "max_steps" and result.answer == "It is 6."
    last = model.requests[2]
    assert "<tools>" not in last.messages[0].content  # tools withheld
    assert "Do not call any tool" in last.messages[-1].content
    assert sum(isinstance(e, ToolCallEvent) for e in events) == 2  # the call in the last word was not run
    assert any(isinstance(e, FinalAnswer) and e.text == "It is 6." for e in events)


async def test_model_error_ends_run_with_error_status() -> None:
    result = await Agent(ScriptedModel([]), tools=[factorial], format="nous").arun("x")
    assert result.status == "error" and "ran out of replies" in (result.error or "")


async def test_stream_emits_typed_events_in_order() -> None:
    agent = Agent(ScriptedModel([call("math.factorial", n=4), "24"]), tools=[factorial], format="nous")
    events = [e async for e in agent.stream("4!")]
    kinds = [type(e) for e in events if not isinstance(e, TextDelta)]
    assert kinds == [RunStarted, AssistantTurn, ToolCallEvent, ToolResultEvent, AssistantTurn, FinalAnswer,
                     RunFinished]
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta) and e.step == 2)
    assert deltas == "24"
    assert isinstance(events[-1], RunFinished) and events[-1].result.answer == "24"


async def test_one_agent_serves_many_conversations_at_once() -> None:
    async def reply(req: ChatRequest) -> str:
        last = req.messages[-1].content
        if "<tool_response>" in last:
            return "answer " + last.split("<tool_response>")[1].split("</tool_response>")[0].strip()
        n = int(last.split()[-1])
        await asyncio.sleep(0.01 * (n % 3))  # interleave the conversations
        return call("math.factorial", n=n)

    agent = Agent(FunctionModel(reply), tools=[factorial], format="nous")
    results = await asyncio.gather(*(agent.arun(f"factorial of {n}") for n in range(1, 11)))
    import math

    assert [r.answer for r in results] == [f"answer {math.factorial(n)}" for n in range(1, 11)]
    assert len({r.conversation_id for r in results}) == 10


async def test_system_prompt_and_sampling_reach_the_model() -> None:
    model = ScriptedModel(["hi"])
    agent = Agent(model, format="nous", system="Be brief.", sampling=Sampling(seed=3, temperature=0.2))
    await agent.arun("hello")
    req = model.requests[0]
    assert req.messages[0].role == "system" and "Be brief." in req.messages[0].content
    assert req.sampling.seed == 3 and req.sampling.temperature == 0.2


async def test_consumer_stopping_early_cancels_the_run() -> None:
    started = asyncio.Event()

    @tool
    async def forever() -> str:
        """Never returns."""
        started.set()
        await asyncio.sleep(60)
        return "x"

    cfg = LoopConfig(model=ScriptedModel([call("forever")]), fmt=get_format("nous"),
                     tools=ToolRegistry([forever]), sampling=Sampling(), max_steps=3)
    gen = run_loop(cfg, "c", [UserMessage(content="go")])
    async for event in gen:
        if isinstance(event, ToolCallEvent):
            break
    await gen.aclose()
    await asyncio.wait_for(started.wait(), 1)
    # nothing left running
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


def test_invalid_max_steps() -> None:
    with pytest.raises(ValueError):
        Agent(ScriptedModel([]), max_steps=0)


async def test_step_error_event_on_model_failure() -> None:
    events = [e async for e in Agent(ScriptedModel([]), format="nous").stream("x")]
    assert any(isinstance(e, StepError) and "ran out" in e.message for e in events)


async def test_native_format_sends_tools_and_tool_choice() -> None:
    from qwenkit.types import Completion, ToolCall

    native_call = Completion(tool_calls=(ToolCall(name="math.factorial", arguments={"n": 3}),))
    model = ScriptedModel([native_call, "6"])
    agent = Agent(model, tools=[factorial], format=get_format("native", tool_choice="required"))
    result = await agent.arun("3!")
    assert result.answer == "6"
    first = model.requests[0]
    assert first.tool_choice == "required" and first.tools is not None
    assert first.tools[0]["function"]["name"] == "math.factorial"
    override = Agent(ScriptedModel(["x"]), tools=[factorial], format="native", tool_choice="math.factorial")
    await override.arun("q")
    assert override.model.requests[0].tool_choice == "math.factorial"  # type: ignore[attr-defined]
