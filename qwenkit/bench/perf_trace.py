"""``python -m qwenkit.bench.perf trace``: what OpenTelemetry tracing costs a run.

Three settings on the same scripted two-step conversation with parallel tool calls, in one process: with
qwenkit's span helpers replaced by empty context managers (no tracing at all), with the API and no tracer
provider (the no-op, what qwenkit pays by default), and with the SDK's `TracerProvider` and an in-memory
exporter. Figures are per conversation and per span; the no-tracing setting is measured twice for the noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

N_CALLS = 3
"""Tool calls per conversation (parallel): spans per conversation = 1 run + 2 chats + 3 tools."""


def _agent() -> Any:
    from qwenkit import Agent, tool
    from qwenkit.testing import FunctionModel

    @tool
    async def echo(x: int) -> int:
        """Echo."""
        return x

    calls = "\n".join(f'<tool_call>\n{{"name": "echo", "arguments": {{"x": {i}}}}}\n</tool_call>'
                      for i in range(N_CALLS))
    replies = {"n": 0}

    def reply(_: object) -> str:
        replies["n"] += 1
        return calls if replies["n"] % 2 else "done"

    return Agent(FunctionModel(reply), tools=[echo], format="nous")


async def _time(n: int) -> list[float]:
    agent = _agent()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await agent.arun("go")
        out.append(time.perf_counter() - start)
    return out


async def bench_trace(args: argparse.Namespace) -> dict[str, Any]:
    """Per-conversation time with no provider, then with the SDK and an in-memory exporter."""
    import contextlib
    from unittest import mock

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from qwenkit import tracing

    n, spans_per_run = args.conversations, 3 + N_CALLS
    await _time(50)  # warm up imports and caches

    @contextlib.contextmanager
    def nothing(*_: object, **__: object) -> Any:
        yield trace.INVALID_SPAN

    names = ("agent_span", "chat_span", "tool_span", "sandbox_span")
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch.object(tracing, name, nothing))
        none = await _time(n)
        none_again = await _time(n)  # the same setting twice: the size of the noise
    noop = await _time(n)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The provider is handed to qwenkit's tracer look-up directly rather than installed globally: the API
    # allows one global provider per process, and this benchmark may run in a process that set one already.
    with mock.patch.object(tracing, "_tracer", lambda: provider.get_tracer(tracing.TRACER_NAME)):
        traced = await _time(n)
    exported = len(exporter.get_finished_spans())
    p50 = {name: statistics.median(v) * 1e3 for name, v in
           (("no_tracing", none), ("no_tracing_again", none_again), ("noop", noop), ("sdk_in_memory", traced))}
    per_span_ms = (p50["sdk_in_memory"] - p50["noop"]) / spans_per_run
    noise = abs(p50["no_tracing_again"] - p50["no_tracing"])
    figures = {"conversations": n, "spans_per_conversation": spans_per_run, "spans_exported": exported,
               "p50_ms": p50, "noise_ms": noise, "noop_cost_ms": p50["noop"] - p50["no_tracing"],
               "sdk_cost_per_span_ms": per_span_ms}
    print(f"no tracing at all:              p50 {p50['no_tracing']:.3f} ms per conversation "
          f"(again: {p50['no_tracing_again']:.3f} ms; noise {noise:.3f} ms)")
    print(f"no tracer provider (no-op API): p50 {p50['noop']:.3f} ms per conversation "
          f"({figures['noop_cost_ms']:+.3f} ms against no tracing)")
    print(f"SDK + in-memory exporter:       p50 {p50['sdk_in_memory']:.3f} ms per conversation, "
          f"{exported} spans exported")
    print(f"cost per span with the SDK:     {per_span_ms:.4f} ms (target < 0.2 ms)")
    return figures


def add_trace(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``perf trace``."""
    p = sub.add_parser("trace", help="OpenTelemetry overhead: no provider vs the SDK with an in-memory exporter")
    p.add_argument("--conversations", type=int, default=500, help="conversations per setting (default 500)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the figures as JSON")
    p.set_defaults(bench=bench_trace)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(bench_trace(argparse.Namespace(conversations=500))), indent=2))
