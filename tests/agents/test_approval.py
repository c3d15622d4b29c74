"""Human approval: a run pauses on calls that need it, and resumes with decisions, even in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from qwenkit import Agent, ConfigError, tool
from qwenkit.testing import ScriptedModel
from qwenkit.tools import ToolContext
from qwenkit.types import ToolMessage

RAN: list[str] = []


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    RAN.append(f"delete {path}")
    return f"deleted {path}"


def _big(args: dict[str, Any], ctx: ToolContext) -> bool:
    return args.get("amount", 0) > 100


@tool(requires_approval=_big)
def pay(amount: int) -> str:
    """Pay someone."""
    RAN.append(f"pay {amount}")
    return f"paid {amount}"


@tool
def read_file(path: str) -> str:
    """Read a file."""
    RAN.append(f"read {path}")
    return "contents"


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


async def test_the_run_pauses_and_an_approved_call_runs_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    model = ScriptedModel([call("delete_file", path="a.txt"), "done"])
    agent = Agent(model, tools=[delete_file])
    paused = await agent.arun("delete a.txt", transcript=path)
    assert paused.status == "awaiting_approval" and RAN == []
    (pending,) = paused.pending_approvals
    assert pending.name == "delete_file" and pending.arguments == {"path": "a.txt"}
    result = await agent.aresume(path, approvals={pending.id: True})
    assert result.status == "completed" and RAN == ["delete a.txt"]
    types = [json.loads(x)["type"] for x in path.read_text().splitlines()]
    assert "approval_requested" in types and "approval_decision" in types


async def test_a_denied_call_reaches_the_model_as_a_denial_with_the_reason() -> None:
    model = ScriptedModel([call("delete_file", path="a.txt"), "ok, not deleted"])
    agent = Agent(model, tools=[delete_file])
    paused = await agent.arun("delete a.txt")
    result = await agent.aresume(paused, approvals={paused.pending_approvals[0].id: "keep it"})
    obs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert RAN == [] and "denied" in obs[0] and "keep it" in obs[0] and result.answer == "ok, not deleted"


async def test_mixed_decisions_in_one_parallel_turn() -> None:
    turn = "\n".join([call("delete_file", path="a"), call("delete_file", path="b"), call("read_file", path="c"),
                      call("pay", amount=5), call("pay", amount=500)])
    model = ScriptedModel([turn, "done"])
    agent = Agent(model, tools=[delete_file, read_file, pay])
    paused = await agent.arun("go")
    assert RAN == []  # nothing of a turn runs while part of it waits
    waiting = {c.arguments.get("path") or c.arguments.get("amount"): c.id for c in paused.pending_approvals}
    assert set(waiting) == {"a", "b", 500}  # the small payment needs no approval
    result = await agent.aresume(paused, approvals={waiting["a"]: True, waiting["b"]: False, waiting[500]: True})
    assert sorted(RAN) == ["delete a", "pay 5", "pay 500", "read c"]
    assert result.status == "completed"


async def test_approvals_for_unknown_ids_are_a_config_error_listing_the_pending() -> None:
    agent = Agent(ScriptedModel([call("delete_file", path="a")]), tools=[delete_file])
    paused = await agent.arun("go")
    with pytest.raises(ConfigError, match=paused.pending_approvals[0].id):
        await agent.aresume(paused, approvals={"call_nope": True})


RESUME_IN_NEW_PROCESS = textwrap.dedent("""
    import json, sys
    from qwenkit import Agent, tool
    from qwenkit.testing import ScriptedModel

    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        '''Delete a file.'''
        return f"deleted {path} in {sys.argv[2]}"

    from qwenkit import load_transcript
    from qwenkit.agents.conversation import unanswered_calls
    pending = unanswered_calls(load_transcript(sys.argv[1]).messages)
    agent = Agent(ScriptedModel(["all done"]), tools=[delete_file])
    result = agent.resume(sys.argv[1], approvals={pending[0].id: True})
    print(json.dumps({"status": result.status, "obs": [m.content for m in result.messages if m.role == "tool"]}))
""")


def test_resume_in_a_new_process_from_the_transcript_alone(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    paused = Agent(ScriptedModel([call("delete_file", path="x")]), tools=[delete_file]).run("go", transcript=path)
    assert paused.status == "awaiting_approval"
    script = tmp_path / "resume.py"
    script.write_text(RESUME_IN_NEW_PROCESS)
    out = subprocess.run([sys.executable, str(script), str(path), "child"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out) == {"status": "completed", "obs": ["deleted x in child"]}
