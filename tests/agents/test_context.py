"""What tools receive (`ToolContext`: deps, timeout, step, agent name), ordering, and operator errors."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from qwenkit import Agent, tool
from qwenkit.agents.events import StepError
from qwenkit.errors import ConfigError, SandboxUnavailable
from qwenkit.testing import ScriptedModel
from qwenkit.tools import Tool, ToolContext, ToolRegistry
from qwenkit.types import ToolCall, ToolMessage, ToolSpec


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


@dataclass
class Shop:
    prices: dict[str, float]


@tool
def price(item: str, ctx: ToolContext[Shop]) -> str:
    """Price of an item."""
    return f"{item}={ctx.deps.prices[item]} step={ctx.step} agent={ctx.agent_name}"


def test_deps_reach_a_tool_that_declares_a_typed_context() -> None:
    agent = Agent(ScriptedModel([call("price", item="tea"), "ok"]), tools=[price], deps=Shop({"tea": 2.5}),
                  name="shopper")
    result = agent.run("tea?")
    obs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert obs == ["tea=2.5 step=1 agent=shopper"]
    assert "ctx" not in price.spec.parameters["properties"]  # the context is not shown to the model


def test_run_deps_override_the_agents() -> None:
    agent = Agent(ScriptedModel([call("price", item="tea"), "ok"]), tools=[price], deps=Shop({"tea": 1.0}))
    result = agent.run("tea?", deps=Shop({"tea": 9.0}))
    assert next(m.content for m in result.messages if isinstance(m, ToolMessage)).startswith("tea=9.0")


class SelfTimed(Tool):
    """A tool that applies ctx.timeout itself, like the code interpreter."""

    handles_timeout = True
    timeout = 7.0

    def __init__(self) -> None:
        self.spec = ToolSpec(name="timed")
        self.seen: list[float | None] = []

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        self.seen.append(ctx.timeout)
        return "stopped myself" if ctx.timeout and ctx.timeout < 1 else "ran"


async def test_a_tool_that_handles_its_timeout_gets_it_in_the_context() -> None:
    t = SelfTimed()
    reg = ToolRegistry([t])
    ctx = ToolContext(conversation_id="c", call_id="1")
    assert (await reg.call(ToolCall(name="timed"), ctx)).content == "ran"
    assert (await reg.call(ToolCall(name="timed"), ctx, timeout=0.5)).content == "stopped myself"
    assert t.seen == [7.0, 0.5]


class NoSandbox(Tool):
    def __init__(self) -> None:
        self.spec = ToolSpec(name="code")

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")


async def test_sandbox_unavailable_ends_the_run_instead_of_reaching_the_model(tmp_path: Any) -> None:
    model = ScriptedModel([call("code"), "made up answer"])
    agent = Agent(model, tools=[NoSandbox()])
    with pytest.raises(SandboxUnavailable, match="bwrap"):
        await agent.arun("run code", transcript=tmp_path / "t.jsonl")
    assert len(model.requests) == 1  # the model never saw the error as an observation
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert any(x["type"] == "step_error" and x["error_type"] == "SandboxUnavailable" for x in lines)


class Misconfigured(Tool):
    def __init__(self) -> None:
        self.spec = ToolSpec(name="mis")

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        raise ConfigError("the tool's server address is not set")


async def test_config_errors_from_tools_end_the_run_and_stop_the_streams_consumer() -> None:
    agent = Agent(ScriptedModel([call("mis")]), tools=[Misconfigured()])
    seen: list[object] = []
    with pytest.raises(ConfigError):
        async for event in agent.stream("go"):
            seen.append(event)
    assert any(isinstance(e, StepError) for e in seen)


ORDER: list[str] = []


@tool(sequential=True)
async def fs_op(op: str, delay: float) -> str:
    """A stateful file-system operation."""
    await asyncio.sleep(delay)
    ORDER.append(op)
    return op



@tool
async def free(tag: str) -> str:
    """A stateless call."""
    ORDER.append(tag)
    return tag


async def test_sequential_tools_run_in_the_order_written() -> None:
    ORDER.clear()
    reply = "\n".join([call("fs_op", op="cd", delay=0.2), call("free", tag="x"), call("fs_op", op="mkdir", delay=0.0),
                       call("fs_op", op="mv", delay=0.1)])
    result = await Agent(ScriptedModel([reply, "done"]), tools=[fs_op, free]).arun("go")
    assert [o for o in ORDER if o != "x"] == ["cd", "mkdir", "mv"]  # despite the delays
    assert ORDER.index("x") < ORDER.index("cd")  # the stateless call did not wait for the chain
    # Results still come back in call order.
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["cd", "x", "mkdir", "mv"]


def test_agent_rejects_a_nonsense_tool_timeout() -> None:
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tool_timeout"):
            Agent(ScriptedModel([]), tool_timeout=bad)
