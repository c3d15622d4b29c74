"""The `code_interpreter` tool: code extraction, one sandboxed session per conversation, observations,
and a run through `Agent` with every prompt format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from qwenkit.agents import Agent
from qwenkit.errors import SandboxUnavailable
from qwenkit.llm.formats._json import is_code_tool
from qwenkit.sandbox.isolation import BubblewrapPolicy
from qwenkit.testing import ScriptedModel
from qwenkit.tools import ToolContext, ToolRegistry
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter, extract_code
from qwenkit.types import Completion, ToolCall, ToolMessage
from tests.sandbox.helpers import descendant_kernel_processes, require_bubblewrap


def test_extract_code() -> None:
    assert extract_code("print(1)") == "print(1)"
    assert extract_code("```python\nprint(1)\n```") == "print(1)\n"
    assert extract_code("Run this:\n```py\na = 1\n```\nthen\n```\nprint(a)\n```") == "a = 1\nprint(a)\n"
    assert extract_code("```json\n{}\n```\n```python\nx = 2\n```") == "x = 2\n"
    assert extract_code("```python\nunclosed = True\n") == "unclosed = True\n"
    plain = 's = "```"\nprint(s)'
    assert extract_code(plain) == plain  # a fence inside a line is code, not markup


def test_spec_is_a_code_tool_for_text_formats() -> None:
    tool = CodeInterpreter(timeout=12)
    assert tool.name == "code_interpreter" and is_code_tool(tool.spec)
    assert tool.config.timeout == 12 and tool.timeout == 12 and tool.timeout_margin > 0
    assert tool.handles_timeout and tool.sequential


@pytest.mark.asyncio
async def test_sandbox_unavailable_is_raised_not_shown_to_the_model(tmp_path: Path) -> None:
    tool = CodeInterpreter(policy=BubblewrapPolicy(bwrap=str(tmp_path / "no-such-bwrap")), workdir_root=tmp_path)
    try:
        with pytest.raises(SandboxUnavailable, match="not available on this machine"):
            await tool.run({"code": "1+1"}, ToolContext(conversation_id="x", call_id="c"))
    finally:
        await tool.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def interpreter(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CodeInterpreter]:
    require_bubblewrap()
    tool = CodeInterpreter(timeout=2, pool_size=1, workdir_root=tmp_path_factory.mktemp("ci"))
    yield tool
    await tool.aclose()
    assert descendant_kernel_processes() == []


def ctx(conversation: str) -> ToolContext:
    return ToolContext(conversation_id=conversation, call_id="c")


@pytest.mark.sandbox
@pytest.mark.asyncio(loop_scope="module")
async def test_one_session_per_conversation(interpreter: CodeInterpreter) -> None:
    reg = ToolRegistry([interpreter])
    r1 = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "x = 'one'"}), ctx("a"))
    r2 = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "x = 'two'"}), ctx("b"))
    assert r1.ok and r2.ok and r1.content == "Finished execution (no output)."
    a = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "```python\nprint(x)\n```"}), ctx("a"))
    b = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "print(x)"}), ctx("b"))
    assert a.content == "stdout:\n```\none\n```" and b.content == "stdout:\n```\ntwo\n```"
    sa, sb = await interpreter.session("a"), await interpreter.session("b")
    assert sa.kernel is not None and sb.kernel is not None and sa.kernel.pid != sb.kernel.pid
    pid = sa.kernel
    await reg.close_conversation("a")
    assert sa.closed and not await pid.is_alive()
    again = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "x"}), ctx("a"))
    assert not again.ok and "NameError" in again.content  # a new conversation with the same id starts fresh


@pytest.mark.sandbox
@pytest.mark.asyncio(loop_scope="module")
async def test_errors_images_and_timeouts_as_observations(interpreter: CodeInterpreter) -> None:
    reg = ToolRegistry([interpreter])
    err = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "int('x')"}), ctx("c"))
    assert not err.ok and err.error_type == "ToolError"
    assert "ValueError: invalid literal for int() with base 10: 'x'" in err.content and "error:" in err.content
    img = await reg.call(ToolCall(name="code_interpreter", arguments={
        "code": "import matplotlib.pyplot as plt\nplt.plot([3, 1, 2]); plt.title('图'); plt.show()"}), ctx("c"),
        timeout=60)  # importing matplotlib can take seconds on a loaded machine; the fixture's limit is 2 s
    assert img.ok and len(img.images) == 1 and Path(img.images[0]).read_bytes()[:4] == b"\x89PNG"
    assert f"![fig-1]({img.images[0]})" in img.content
    slow = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "while True: pass"}), ctx("c"))
    assert not slow.ok and "interrupted after 2 s" in slow.content
    empty = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "  "}), ctx("c"))
    assert not empty.ok and empty.error_type == "ModelRetry"


@pytest.mark.sandbox
@pytest.mark.asyncio(loop_scope="module")
async def test_registry_timeout_interrupts_the_cell_and_the_kernel_answers(interpreter: CodeInterpreter) -> None:
    reg = ToolRegistry([interpreter])
    await reg.call(ToolCall(name="code_interpreter", arguments={"code": "kept = 1"}), ctx("d"))
    cut = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "import time; time.sleep(60)"}),
                         ctx("d"), timeout=3)
    # The registry passes its limit on (handles_timeout): the tool interrupts the cell itself and says so.
    assert not cut.ok and cut.error_type == "ToolError" and "interrupted after 3 s" in cut.content
    assert "abandon" not in cut.content and cut.duration_s >= 3
    after = await reg.call(ToolCall(name="code_interpreter", arguments={"code": "print(40+2)\nkept"}), ctx("d"))
    assert after.ok and after.content == "stdout:\n```\n42\n```\n\nOut:\n```\n1\n```"  # same kernel, state kept


@pytest.mark.sandbox
@pytest.mark.asyncio(loop_scope="module")
async def test_the_tool_applies_the_context_timeout_itself(interpreter: CodeInterpreter) -> None:
    slow = ToolContext(conversation_id="t", call_id="c1", timeout=3)
    out = await interpreter.run({"code": "import time\ntime.sleep(60)"}, slow)
    assert out.is_error and "interrupted after 3 s" in out.text and "abandon" not in out.text
    assert out.data["timed_out"] and out.data["interrupted"] and out.data["timeout_s"] == 3
    after = await interpreter.run({"code": "print(40+2)"}, ToolContext(conversation_id="t", call_id="c2"))
    assert not after.is_error and after.text == "stdout:\n```\n42\n```"  # the same kernel answers


@pytest.mark.sandbox
@pytest.mark.asyncio
async def test_kill_now_kills_every_kernel_without_awaiting(tmp_path: Path) -> None:
    tool = CodeInterpreter(timeout=5, pool_size=1, workdir_root=tmp_path)
    await tool.run({"code": "x = 1"}, ToolContext(conversation_id="k", call_id="c"))
    session = await tool.session("k")
    assert session.kernel is not None and await session.kernel.is_alive()
    tool.kill_now()
    assert session.closed and tool._sessions == {}
    again = await tool.run({"code": "x"}, ToolContext(conversation_id="k", call_id="c"))
    assert again.is_error and "NameError" in again.text  # usable afterwards, with a fresh kernel
    await tool.aclose()


CODE = "print(6 * 7)"
FENCED = f"```py\n{CODE}\n```"
REPLIES = {
    "react": [f"Thought: compute it\nAction: code_interpreter\nAction Input: {FENCED}",
              "Thought: I now know the final answer.\nFinal Answer: 42"],
    "qwen": [f"✿FUNCTION✿: code_interpreter\n✿ARGS✿: {FENCED}", "42"],
    "nous": ['<tool_call>\n{"name": "code_interpreter", "arguments": {"code": "print(6 * 7)"}}\n</tool_call>', "42"],
    "native": [Completion(tool_calls=(ToolCall(name="code_interpreter", arguments={"code": FENCED}),),
                          finish_reason="tool_calls"), "42"],
}


@pytest.mark.sandbox
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("fmt", list(REPLIES))
async def test_agent_drives_code_interpreter_in_every_format(interpreter: CodeInterpreter, fmt: str) -> None:
    model = ScriptedModel(REPLIES[fmt])
    result = await Agent(model, tools=[interpreter], format=fmt).arun("What is 6*7? Use code.")
    assert result.status == "completed" and result.answer == "42", result
    tool_msgs = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_msgs] == ["stdout:\n```\n42\n```"]
    # The observation reached the model's next prompt, written in the format's own markers.
    assert any("42" in str(getattr(m, "content", "")) for m in model.requests[1].messages)
    # The run's conversation was closed at its end, and with it the kernel.
    assert result.conversation_id not in interpreter._sessions
