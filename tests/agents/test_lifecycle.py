"""Agents release what they hold: `async with`, `close`, and a finaliser for agents dropped unclosed."""

from __future__ import annotations

import gc
import json
import time
import warnings
from typing import Any

import pytest

from qwenkit import Agent, tool
from qwenkit.testing import ScriptedModel
from qwenkit.tools import Tool, ToolContext
from qwenkit.types import ToolSpec


class Holder(Tool):
    """Stands in for the code interpreter: holds a 'kernel' per conversation until closed."""

    def __init__(self) -> None:
        self.spec = ToolSpec(name="hold")
        self.held: set[str] = set()
        self.killed = 0
        self.closed = 0

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        self.held.add(ctx.conversation_id)
        return "held"

    async def aclose(self) -> None:
        self.closed += 1
        self.held.clear()

    def close_now(self) -> bool:
        had = bool(self.held)
        self.killed += len(self.held)
        self.held.clear()
        return had


class ClosableModel(ScriptedModel):
    closed = 0

    async def aclose(self) -> None:
        type(self).closed += 1


CALL = '<tool_call>\n{"name": "hold", "arguments": {}}\n</tool_call>'


async def test_async_with_closes_tools_and_model() -> None:
    holder, model = Holder(), ClosableModel([CALL, "ok"])
    async with Agent(model, tools=[holder]) as agent:
        await agent.arun("go", conversation_id="kept")
        assert holder.held == {"kept"}
    assert holder.closed == 1 and ClosableModel.closed >= 1 and not holder.held


def test_a_dropped_agent_kills_what_its_tools_hold_and_warns_by_name() -> None:
    holder = Holder()
    agent = Agent(ScriptedModel([CALL, "ok"]), tools=[holder], name="leaky")
    agent.run("go", conversation_id="left-open")
    assert holder.held == {"left-open"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del agent
        gc.collect()
    assert holder.killed == 1
    assert any("leaky" in str(w.message) and issubclass(w.category, ResourceWarning) for w in caught)


def test_a_dropped_agent_that_holds_nothing_does_not_warn() -> None:
    agent = Agent(ScriptedModel(["ok"]), name="tidy")
    agent.run("hi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del agent
        gc.collect()
    assert not [w for w in caught if "tidy" in str(w.message)]


def test_repeated_blocking_runs_reuse_one_event_loop_and_thread_pool() -> None:
    import threading

    threads: set[int] = set()

    @tool
    def where() -> str:
        """The worker thread's id."""
        threads.add(threading.get_ident())
        time.sleep(0.001)
        return "ok"

    call = '<tool_call>\n{"name": "where", "arguments": {}}\n</tool_call>'
    agent = Agent(ScriptedModel([call, "a"] * 20), tools=[where])
    for _ in range(20):
        assert agent.run("go").answer == "a"
    agent.close()
    # One long-lived pool: its few threads serve all 20 runs (a new loop per run would start a new pool).
    assert len(threads) <= 4, threads


def test_close_is_safe_after_runs_and_json_of_results_is_plain() -> None:
    agent = Agent(ScriptedModel(["fine"]))
    result = agent.run("hi")
    agent.close()
    assert json.loads(result.model_dump_json())["answer"] == "fine"


@pytest.mark.sandbox
def test_a_dropped_agent_kills_its_code_interpreter_kernels() -> None:
    import psutil

    from qwenkit import CodeInterpreter

    call = ('<tool_call>\n{"name": "code_interpreter", "arguments": {"code": "import os; print(os.getpid())"}}\n'
            "</tool_call>")
    agent = Agent(ScriptedModel([call, "ok"]), tools=[CodeInterpreter()], name="forgetful")
    agent.run("go", conversation_id="kept-open")  # the kernel stays: the conversation was never closed
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert before, "a kernel process should be running"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del agent
        gc.collect()
    assert any("forgetful" in str(w.message) for w in caught)
    alive = [pid for pid in before if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == []
