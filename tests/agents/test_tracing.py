"""OpenTelemetry spans: one per run, model call and tool call, with GenAI attributes; content only on opt-in."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from qwenkit import Agent, tool
from qwenkit.testing import ScriptedModel

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> Iterator[None]:
    # The API allows one global provider per process; set it once for this module.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    yield


@pytest.fixture(autouse=True)
def _clear() -> None:
    _EXPORTER.clear()


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


@tool
async def double(x: int) -> int:
    """Double."""
    return 2 * x


@tool
def boom() -> str:
    """Fails."""
    raise RuntimeError("kaput")


def _by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_span_tree_of_a_run_with_parallel_calls_and_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWENKIT_TRACE_CONTENT", raising=False)
    turn = "\n".join([call("double", x=1), call("double", x=2), call("boom")])
    agent = Agent(ScriptedModel([turn, "secret answer"]), tools=[double, boom], name="calc")
    await agent.arun("secret question")
    spans = _EXPORTER.get_finished_spans()
    (run,) = _by_name(spans, "invoke_agent calc")
    chats = _by_name(spans, "chat ")
    tools = _by_name(spans, "execute_tool ")
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.request.model"] == "scripted"
    assert len(chats) == 2 and all(c.parent and c.parent.span_id == run.context.span_id for c in chats)
    assert chats[0].attributes["gen_ai.operation.name"] == "chat"
    assert chats[0].attributes["gen_ai.usage.output_tokens"] > 0
    # Parallel calls are siblings under the run.
    assert len(tools) == 3 and {t.parent.span_id for t in tools if t.parent} == {run.context.span_id}
    assert {t.attributes["gen_ai.tool.name"] for t in tools} == {"double", "boom"}
    assert all(t.attributes["gen_ai.tool.call.id"].startswith("call_") for t in tools)
    (failed,) = [t for t in tools if t.attributes["gen_ai.tool.name"] == "boom"]
    assert failed.status.status_code == StatusCode.ERROR and failed.attributes["error.type"] == "RuntimeError"
    # No content without opt-in.
    dumped = json.dumps([dict(s.attributes or {}) for s in spans])
    assert "secret" not in dumped


async def test_content_is_recorded_only_with_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWENKIT_TRACE_CONTENT", "1")
    await Agent(ScriptedModel([call("double", x=21), "secret answer"]), tools=[double]).arun("secret question")
    spans = _EXPORTER.get_finished_spans()
    chat = _by_name(spans, "chat ")[-1]
    assert "secret question" in chat.attributes["gen_ai.input.messages"]
    assert chat.attributes["gen_ai.output.messages"] == "secret answer"
    (t,) = _by_name(spans, "execute_tool ")
    assert t.attributes["gen_ai.tool.call.result"] == "42"


async def test_an_agent_used_as_a_tool_nests_under_the_callers_tool_span() -> None:
    inner = Agent(ScriptedModel(["inner answer"]), name="inner")

    @tool
    async def ask_inner(question: str) -> str:
        """Ask the inner agent."""
        return (await inner.arun(question)).answer

    outer = Agent(ScriptedModel([call("ask_inner", question="q"), "done"]), tools=[ask_inner], name="outer")
    await outer.arun("go")
    spans = _EXPORTER.get_finished_spans()
    (tool_span,) = _by_name(spans, "execute_tool ask_inner")
    (inner_run,) = _by_name(spans, "invoke_agent inner")
    assert inner_run.parent is not None and inner_run.parent.span_id == tool_span.context.span_id
    assert inner_run.context.trace_id == tool_span.context.trace_id


async def test_a_failed_model_call_marks_its_span() -> None:
    await Agent(ScriptedModel([])).arun("go")  # runs out at once: a ModelError
    (chat,) = _by_name(_EXPORTER.get_finished_spans(), "chat ")
    assert chat.status.status_code == StatusCode.ERROR and chat.attributes["error.type"] == "ModelError"


@pytest.mark.sandbox
async def test_sandbox_execution_gets_its_own_child_span() -> None:
    from qwenkit import CodeInterpreter

    async with Agent(ScriptedModel([call("code_interpreter", code="print(6*7)"), "42"]),
                     tools=[CodeInterpreter()]) as agent:
        await agent.arun("go")
    spans = _EXPORTER.get_finished_spans()
    (tool_span,) = _by_name(spans, "execute_tool code_interpreter")
    (sandbox,) = _by_name(spans, "sandbox.execute")
    assert sandbox.parent is not None and sandbox.parent.span_id == tool_span.context.span_id
    assert sandbox.attributes["qwenkit.sandbox.timed_out"] is False
    assert sandbox.attributes["qwenkit.sandbox.duration_s"] > 0
