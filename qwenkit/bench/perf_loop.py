"""``python -m qwenkit.bench.perf loop``: the agent loop's own overhead per conversation, next to Qwen-Agent's.

Every conversation is the same scripted two-step exchange in the nous format: the model calls ``add`` once
(``<tool_call>`` JSON), gets the result, and answers. No server, no tokens: what is measured is everything
the framework does around the model and the tool (prompt rendering, parsing, dispatch, thread or loop
hand-offs, bookkeeping). qwenkit is measured four ways: `Agent.run` (blocking) and ``await Agent.arun``, each
with a sync tool and with an async tool. When ``qwen_agent`` is importable, Qwen-Agent's `FnCallAgent` runs
the same exchange with a scripted ``BaseFnCallModel`` (its nous prompt, the one its OpenAI-compatible
backends use) and a sync tool (its only kind), and the ratios qwenkit / Qwen-Agent are printed (below 1:
qwenkit is cheaper). Qwen-Agent's per-call INFO logging is switched off for the measurement.

These are measurements, not tests: nothing fails when qwenkit is slower.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'
ANSWER = "2 + 3 = 5."
PROMPT = "What is 2 + 3? Use the tool."


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _figures(samples: list[float]) -> dict[str, float]:
    return {"p50_s": _pct(samples, 0.5), "p90_s": _pct(samples, 0.9), "mean_s": statistics.fmean(samples),
            "n": len(samples)}


# -------------------------------------------------------------------------------------------- qwenkit

def _qwenkit_agent(kind: str) -> Any:
    """An `Agent` over a scripted model that answers every conversation with `CALL` then `ANSWER`."""
    from qwenkit import Agent, tool
    from qwenkit.llm.base import ChatRequest
    from qwenkit.testing import FunctionModel

    if kind == "sync":
        @tool(name="add")
        def add(a: int, b: int) -> int:
            """Add two integers.

            Args:
                a: First addend.
                b: Second addend.
            """
            return a + b
        chosen = add
    else:
        @tool(name="add")
        async def add_async(a: int, b: int) -> int:
            """Add two integers.

            Args:
                a: First addend.
                b: Second addend.
            """
            return a + b
        chosen = add_async

    def reply(request: ChatRequest) -> str:
        # A tool result last in the conversation means the call was made: answer. One model serves every run.
        # The nous format renders the result as a user turn holding <tool_response>.
        last = request.messages[-1]
        called = last.role == "tool" or "<tool_response>" in str(getattr(last, "content", ""))
        return ANSWER if called else CALL

    return Agent(FunctionModel(reply, name="scripted"), tools=[chosen], format="nous", max_steps=4)


def _check(result: Any) -> None:
    if result.answer != ANSWER or result.status != "completed":
        raise RuntimeError(f"the scripted exchange went wrong: status {result.status}, answer {result.answer!r}")


def _time_sync(run: Callable[[], None], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return out


async def _time_async(run: Callable[[], Awaitable[None]], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await run()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await run()
        out.append(time.perf_counter() - t0)
    return out


def measure_qwenkit(n: int, warmup: int) -> dict[str, dict[str, float]]:
    """Per-conversation seconds of `Agent.run` and `Agent.arun`, with a sync and an async tool."""
    figures: dict[str, dict[str, float]] = {}
    for kind in ("sync", "async"):
        agent = _qwenkit_agent(kind)

        def blocking(agent: Any = agent) -> None:
            _check(agent.run(PROMPT))

        figures[f"run_{kind}_tool"] = _figures(_time_sync(blocking, n, warmup))

        async def awaited(agent: Any = agent) -> None:
            _check(await agent.arun(PROMPT))

        async def main(agent: Any = agent) -> list[float]:
            try:
                return await _time_async(awaited, n, warmup)
            finally:
                await agent.aclose()

        figures[f"arun_{kind}_tool"] = _figures(asyncio.run(main()))
    return figures


# ----------------------------------------------------------------------------------------- Qwen-Agent

def qwen_agent_version() -> str | None:
    """The installed ``qwen-agent`` version, or ``None`` when it cannot be imported."""
    try:
        import qwen_agent
    except Exception:  # any import failure (a missing dependency of it too) means "not available"
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qwen-agent")
    except PackageNotFoundError:
        return str(getattr(qwen_agent, "__version__", "unknown"))


def _qwen_agent_runner() -> Callable[[], None]:
    """Qwen-Agent's `FnCallAgent` over a scripted nous-format model and a sync ``add`` tool."""
    from qwen_agent.agents import FnCallAgent
    from qwen_agent.llm.function_calling import BaseFnCallModel
    from qwen_agent.llm.schema import ASSISTANT, FUNCTION, Message
    from qwen_agent.tools.base import BaseTool

    class ScriptedQwenModel(BaseFnCallModel):
        """Answers like a text model in the nous format: the call first, the answer after a tool result."""

        def _reply(self, messages: list[Message]) -> list[Message]:
            text = str(messages[-1].content)
            # Qwen-Agent's nous prompt turns the tool result into a user turn holding <tool_response>.
            called = "<tool_response>" in text or any(m.role == FUNCTION for m in messages)
            return [Message(role=ASSISTANT, content=ANSWER if called else CALL)]

        def _chat_no_stream(self, messages: list[Message], generate_cfg: dict[str, Any]) -> list[Message]:
            return self._reply(messages)

        def _chat_stream(self, messages: list[Message], delta_stream: bool,
                         generate_cfg: dict[str, Any]) -> Any:
            yield self._reply(messages)

        def _continue_assistant_response(self, messages: list[Any], generate_cfg: dict[str, Any],
                                         stream: bool) -> Any:
            return self._chat(messages, stream=stream, delta_stream=False, generate_cfg=generate_cfg)

    class Add(BaseTool):
        name = "add"
        description = "Add two integers."

        def __init__(self) -> None:
            self.parameters = {
                "type": "object", "required": ["a", "b"],
                "properties": {"a": {"type": "integer", "description": "First addend."},
                               "b": {"type": "integer", "description": "Second addend."}},
            }
            super().__init__()

        def call(self, params: str | dict[str, Any], **kwargs: Any) -> str:
            args = json.loads(params) if isinstance(params, str) else params
            return str(args["a"] + args["b"])

    # Qwen-Agent logs an INFO line per model call by default; printing is not framework overhead.
    logging.getLogger("qwen_agent_logger").setLevel(logging.WARNING)
    llm = ScriptedQwenModel({"model": "scripted", "generate_cfg": {"fncall_prompt_type": "nous"}})
    bot = FnCallAgent(function_list=[Add()], llm=llm)

    def run() -> None:
        messages = bot.run_nonstream([{"role": "user", "content": PROMPT}])
        last = messages[-1]
        text = last["content"] if isinstance(last, dict) else last.content
        if len(messages) != 3 or text != ANSWER:
            raise RuntimeError(f"Qwen-Agent's scripted exchange went wrong: {messages!r}"[:500])

    return run


def measure_qwen_agent(n: int, warmup: int) -> dict[str, float]:
    """Per-conversation seconds of Qwen-Agent's `FnCallAgent.run_nonstream` on the same exchange."""
    return _figures(_time_sync(_qwen_agent_runner(), n, warmup))


# --------------------------------------------------------------------------------------------- report

def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


async def bench_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the loop overhead; print a report unless ``--json``; return the figures."""
    # The blocking `Agent.run` must not be called inside a running loop: measure in a worker thread.
    ours = await asyncio.to_thread(measure_qwenkit, args.conversations, args.warmup)
    figures: dict[str, Any] = {"qwenkit": ours, "conversations": args.conversations}
    qa_version = qwen_agent_version() if not args.no_qwen_agent else None
    if qa_version is not None:
        theirs = await asyncio.to_thread(measure_qwen_agent, args.conversations, args.warmup)
        figures["qwen_agent"] = {"version": qa_version, "fncall_agent_sync_tool": theirs}
        figures["ratio_p50_qwenkit_over_qwen_agent"] = {
            name: f["p50_s"] / theirs["p50_s"] for name, f in ours.items()}
    if getattr(args, "json", False):
        return figures
    lines = [
        f"qwenkit agent-loop overhead — {platform.node()} ({os.cpu_count()} CPUs), Python "
        f"{sys.version.split()[0]}; one scripted tool call then an answer (nous format), "
        f"{args.conversations} conversations after {args.warmup} warm-up",
        "                                   p50          p90         mean",
    ]
    labels = {"run_sync_tool": "Agent.run, sync tool", "run_async_tool": "Agent.run, async tool",
              "arun_sync_tool": "await Agent.arun, sync tool", "arun_async_tool": "await Agent.arun, async tool"}
    for key, label in labels.items():
        f = ours[key]
        lines.append(f"  {label:30} {_ms(f['p50_s'])} {_ms(f['p90_s'])} {_ms(f['mean_s'])}")
    if qa_version is not None:
        theirs = figures["qwen_agent"]["fncall_agent_sync_tool"]
        lines.append(f"  {'Qwen-Agent ' + qa_version + ' FnCallAgent':30} {_ms(theirs['p50_s'])} "
                     f"{_ms(theirs['p90_s'])} {_ms(theirs['mean_s'])}  (run_nonstream, sync tool)")
        ratios = figures["ratio_p50_qwenkit_over_qwen_agent"]
        lines.append("  ratio qwenkit / Qwen-Agent (p50; below 1: qwenkit is cheaper):")
        lines += [f"    {label:30} {ratios[key]:6.2f}x" for key, label in labels.items()]
    elif args.no_qwen_agent:
        lines.append("  Qwen-Agent: not measured (--no-qwen-agent).")
    else:
        lines.append("  Qwen-Agent: not installed (pip install qwen-agent to compare with its FnCallAgent).")
    print("\n".join(lines))
    return figures


def add_loop(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``loop`` subcommand to ``python -m qwenkit.bench.perf``."""
    p = sub.add_parser("loop", help="agent-loop overhead per conversation (scripted model), vs Qwen-Agent")
    p.add_argument("--conversations", type=int, default=2000, help="conversations measured per variant")
    p.add_argument("--warmup", type=int, default=100, help="conversations run first, not measured")
    p.add_argument("--no-qwen-agent", action="store_true", help="skip Qwen-Agent even if it is installed")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the figures as JSON")
    p.set_defaults(bench=bench_loop)
