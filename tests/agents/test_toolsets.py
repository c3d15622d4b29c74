"""Toolsets (MCP servers and the like): started on the first run, their tools added, closed with the agent."""

from __future__ import annotations

import json

import pytest

from qwenkit import Agent, ConfigError, tool
from qwenkit.testing import ScriptedModel
from qwenkit.tools import Tool
from qwenkit.types import ToolMessage


@tool
def ping() -> str:
    """Ping."""
    return "pong"


@tool(name="echo")
def echo(text: str) -> str:
    """Echo."""
    return text


class FakeToolset:
    def __init__(self, *tools: Tool) -> None:
        self._tools = list(tools)
        self.listed = 0
        self.closed = 0

    async def tools(self) -> list[Tool]:
        self.listed += 1
        return self._tools

    async def aclose(self) -> None:
        self.closed += 1


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


async def test_a_toolsets_tools_are_added_on_the_first_run_and_it_closes_with_the_agent() -> None:
    ts = FakeToolset(echo)
    model = ScriptedModel([call("echo", text="hi"), "done", "again"])
    async with Agent(model, tools=[ping, ts]) as agent:
        result = await agent.arun("go")
        await agent.arun("again")
        assert ts.listed == 1  # listed once, not per run
        assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["hi"]
        assert "echo" in model.requests[0].messages[0].content  # the model was told about it
    assert ts.closed == 1


async def test_clashing_names_are_a_config_error() -> None:
    agent = Agent(ScriptedModel(["x"]), tools=[echo, FakeToolset(echo)])
    with pytest.raises(ConfigError, match="'echo'"):
        await agent.arun("go")


def test_something_that_is_neither_is_refused() -> None:
    with pytest.raises(TypeError, match="not a tool or a toolset"):
        Agent(ScriptedModel([]), tools=[object()])  # type: ignore[list-item]
