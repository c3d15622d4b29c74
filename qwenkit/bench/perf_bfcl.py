"""Harness cost of the BFCL multi-turn set: ``python -m qwenkit.bench.perf bfcl``.

The real ``qwenkit bench bfcl`` machinery (`BfclTask` through `run_bench`, every entry a conversation
through `qwenkit.Agent` against bfcl-eval's API classes, scored by the official checkers, rows written
to a results file) runs the four multi-turn categories against a model that answers at once with each
entry's ground truth, written in the chosen prompt format. Every entry then scores valid, and the wall
time is the harness's own cost.

The model, by default, is the real `OpenAICompatible` client talking to a stub OpenAI-compatible server
on 127.0.0.1, in a child process, that streams the gold reply (4-character SSE chunks, about a token
each; native calls one chunk per call) without waiting. ``--no-http`` replays the same replies in
process (a `FunctionModel`), without the HTTP client. Each request carries the entry's id and call
number in its body (``extra_body``), so the replay does not depend on the conversation's text.

The event loop's time is split, exclusively, between: the model call (the client's own code in
``stream``), the simulated APIs during inference (`ApiSession`: scenario loading and calls), the rest of
``solve`` (agent loop: rendering, parsing, events), scoring (official checkers, of which replaying the
calls on fresh instances), the runner (rows, results file) and the rest (the loop idle, waiting on the
stub server, and callbacks outside any task). "Outside the model call" is everything but the client's
code and the loop's idle time. Each activity is given in wall time and in the loop thread's CPU time
(the shared machine's other processes do not inflate the second). To measure it, the benchmark wraps
every task's steps and the timed calls, and swaps `ApiSession` in `qwenkit.bench.bfcl.multiturn` for a
timed subclass while it runs; this costs about a microsecond per step (``--no-breakdown``: without it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Coroutine, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenkit.bench._stub_process import StubProcess, read_request, response

MODEL = "stub"
FORMATS = ("nous", "qwen", "react", "native", "pythonic")
TAG = "qwenkit_perf_call"
"""Body field (sent through ``extra_body``) naming the entry and call: ``<entry id>#<call number>``."""
CHUNK_CHARS = 4

Calls = list[tuple[str, dict[str, Any]]]
Reply = str | Calls
"""A text reply, or native calls (the ``native`` format)."""

# ------------------------------------------------------------------------------------- gold replies


def gold_plans(data_dir: Path, fmt: str, limit: int | None) -> dict[str, list[Reply]]:
    """Per entry id, the replies of a model replaying the ground truth: per turn, its calls, then an answer."""
    from qwenkit.bench.bfcl.categories import MULTI_TURN
    from qwenkit.bench.bfcl.gold import gold_reply
    from qwenkit.bench.bfcl.multiturn import gold_calls, load_multi_turn

    plans: dict[str, list[Reply]] = {}
    for category in MULTI_TURN:
        for entry in load_multi_turn(data_dir, category)[:limit]:
            replies: list[Reply] = []
            for turn in gold_calls(data_dir, entry):
                replies += [gold_reply(fmt, step) for step in turn if step]
                replies.append(gold_reply(fmt, []))
            plans[entry.id] = replies
    return plans


def planned(plans: dict[str, list[Reply]], fmt: str, tag: Any) -> Reply:
    """The reply for a request's tag; past the end of a plan (or an unknown tag), the answer."""
    from qwenkit.bench.bfcl.gold import gold_reply

    entry, _, n = str(tag).rpartition("#")
    plan = plans.get(entry, [])
    return plan[int(n)] if n.isdigit() and int(n) < len(plan) else gold_reply(fmt, [])


# ------------------------------------------------------------------------------------- stub server


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


def _native(calls: Calls) -> list[dict[str, Any]]:
    return [{"index": i, "id": f"call_{i}", "type": "function",
             "function": {"name": n, "arguments": json.dumps(a, ensure_ascii=False)}} for i, (n, a) in enumerate(calls)]


def stream_body(reply: Reply) -> bytes:
    """The SSE body of a streamed reply: text in `CHUNK_CHARS` pieces or one chunk per call, usage, done."""
    parts = [_chunk({"role": "assistant", "content": ""})]
    if isinstance(reply, str):
        parts += [_chunk({"content": reply[i:i + CHUNK_CHARS]}) for i in range(0, len(reply), CHUNK_CHARS)]
        finish = "stop"
    else:
        parts += [_chunk({"tool_calls": [call]}) for call in _native(reply)]
        finish = "tool_calls"
    parts.append(_chunk({}, finish))
    usage = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": [],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    parts.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def whole_body(reply: Reply) -> bytes:
    """The body of a reply that was not streamed."""
    message: dict[str, Any] = {"role": "assistant", "content": reply if isinstance(reply, str) else ""}
    if not isinstance(reply, str):
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in _native(reply)]
    return json.dumps({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "stop" if isinstance(reply, str) else "tool_calls"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }, ensure_ascii=False).encode()


_MODELS = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "qwenkit"}]}).encode()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, plans: dict[str, list[Reply]],
                  fmt: str) -> None:
    try:
        while (request_line := await read_request(reader)) is not None:
            method, path, data = request_line
            kind = "application/json"
            if method == "POST" and path.endswith("/chat/completions"):
                request = json.loads(data)
                reply = planned(plans, fmt, request.get(TAG))
                if request.get("stream"):
                    status, body, kind = "200 OK", stream_body(reply), "text/event-stream"
                else:
                    status, body = "200 OK", whole_body(reply)
            elif method == "GET" and path.endswith("/models"):
                status, body = "200 OK", _MODELS
            else:
                status, body = "404 Not Found", b'{"error": {"message": "not found"}}'
            writer.write(response(status, body, kind))
            await writer.drain()
    finally:
        writer.close()


async def serve(plans: dict[str, list[Reply]], fmt: str) -> None:
    """Serve the gold replies on 127.0.0.1 until cancelled; print ``PORT <n>`` once listening."""
    server = await asyncio.start_server(lambda r, w: _handle(r, w, plans, fmt), "127.0.0.1", 0, backlog=1024,
                                        limit=64 * 1024 * 1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class StubServer(StubProcess):
    """The stub server in a child process (its CPU and event loop are not the harness's).

    Args:
        data_dir: The fetched BFCL folder.
        fmt: The format the replies are written in.
        limit: Entries per category.
    """

    def __init__(self, data_dir: Path, fmt: str, limit: int | None) -> None:
        super().__init__("qwenkit.bench.perf_bfcl", ["--data-dir", str(data_dir), "--format", fmt]
                         + ([] if limit is None else ["--limit", str(limit)]))


# ------------------------------------------------------------------------------------- accounting


class Clock:
    """Exclusive event-loop time per activity: the innermost timed region open is charged.

    Both wall time (`totals`) and the loop thread's CPU time (`cpu`): on a shared machine the first also
    holds the time the process waited for a core, the second does not. ``enabled=False`` measures nothing.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.totals: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self._stack: list[str] = []
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()

    def _charge(self, activity: str) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.totals[activity] += now - self._last
        self.cpu[activity] += cpu - self._last_cpu
        self._last, self._last_cpu = now, cpu

    def push(self, activity: str) -> None:
        if not self.enabled:
            return
        if self._stack:
            self._charge(self._stack[-1])
        else:
            self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self._stack.append(activity)

    def pop(self) -> None:
        if self.enabled:
            self._charge(self._stack.pop())

    def reset(self) -> None:
        self.totals.clear()
        self.cpu.clear()


_PHASE: contextvars.ContextVar[str] = contextvars.ContextVar("qwenkit_perf_phase", default="other")


@dataclass
class _Entry:
    id: str
    calls: int = 0


_ENTRY: contextvars.ContextVar[_Entry | None] = contextvars.ContextVar("qwenkit_perf_entry", default=None)


class _Steps:
    """Awaits a coroutine, charging each of its steps (send/throw until it yields) to an activity.

    ``activity=None`` charges the phase of the current context (`_PHASE`) at each step.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], clock: Clock, activity: str | None = None) -> None:
        self.coro = coro
        self.clock = clock
        self.activity = activity

    def __await__(self) -> Generator[Any, Any, Any]:
        if not self.clock.enabled:
            return (yield from self.coro.__await__())
        value: Any = None
        error: BaseException | None = None
        while True:
            self.clock.push(self.activity or _PHASE.get())
            try:
                yielded = self.coro.send(value) if error is None else self.coro.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                self.clock.pop()
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # cancellation and close go to the inner coroutine
                value, error = None, exc


@contextlib.contextmanager
def _phase(name: str) -> Generator[None, None, None]:
    token = _PHASE.set(name)
    try:
        yield
    finally:
        _PHASE.reset(token)


@dataclass
class Stats:
    """What the timed model saw."""

    calls: int = 0
    latencies: list[float] = field(default_factory=list)


class TimedModel:
    """The model under test, wrapped: tags each request with its entry and call, times the call.

    Args:
        inner: The model (`OpenAICompatible` on the stub server, or the in-process replay).
        clock: Where the loop time inside the model's code goes (activity ``model``).
        stats: Calls and their latencies (first request byte to last chunk, waiting included).
    """

    def __init__(self, inner: Any, clock: Clock, stats: Stats) -> None:
        self.inner = inner
        self.clock = clock
        self.stats = stats

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def _tagged(self, request: Any) -> Any:
        entry = _ENTRY.get()
        if entry is None:
            return request
        tag = f"{entry.id}#{entry.calls}"
        entry.calls += 1
        sampling = request.sampling.model_copy(update={"extra_body": {**request.sampling.extra_body, TAG: tag}})
        return request.model_copy(update={"sampling": sampling})

    async def complete(self, request: Any) -> Any:
        t0 = time.perf_counter()
        with _phase("model"):  # tasks the client starts are charged to the model too
            out = await _Steps(self.inner.complete(self._tagged(request)), self.clock, "model")
        self.stats.calls += 1
        self.stats.latencies.append(time.perf_counter() - t0)
        return out

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        chunks = self.inner.stream(self._tagged(request)).__aiter__()
        waited = 0.0
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    # Set and reset around each await only: a generator's body runs in its consumer's context.
                    with _phase("model"):
                        chunk = await _Steps(chunks.__anext__(), self.clock, "model")
                except StopAsyncIteration:
                    break
                finally:
                    waited += time.perf_counter() - t0
                yield chunk
        finally:
            t0 = time.perf_counter()
            with _phase("model"):
                await _Steps(chunks.aclose(), self.clock, "model")
            waited += time.perf_counter() - t0
            self.stats.calls += 1
            self.stats.latencies.append(waited)

    async def template_info(self) -> Any:
        ask = getattr(self.inner, "template_info", None)
        if ask is None:
            return None
        with _phase("model"):
            return await _Steps(ask(), self.clock, "model")

    async def aclose(self) -> None:
        await self.inner.aclose()


def _replay_model(plans: dict[str, list[Reply]], fmt: str) -> Any:
    """The in-process replay (``--no-http``): a `FunctionModel` answering by the request's tag."""
    from qwenkit.testing import FunctionModel
    from qwenkit.types import Completion, ToolCall

    def answer(request: Any) -> str | Completion:
        reply = planned(plans, fmt, request.sampling.extra_body.get(TAG))
        if isinstance(reply, str):
            return reply
        return Completion(text="", finish_reason="tool_calls", tool_calls=tuple(
            ToolCall(name=n, arguments=a, raw_arguments=json.dumps(a, ensure_ascii=False)) for n, a in reply))

    class Replay(FunctionModel):
        async def complete(self, request: Any) -> Completion:
            out = await super().complete(request)
            self.requests.clear()  # 800 long conversations: keep no history of requests
            return out

    return Replay(answer, name=MODEL)


def _timed_session_class(base: Any, clock: Clock) -> Any:
    """`ApiSession` with its construction and calls charged to ``apis`` (inference) or ``score_apis``."""

    def activity() -> str:
        return "score_apis" if _PHASE.get() == "score" else "apis"

    class TimedSession(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            clock.push(activity())
            try:
                super().__init__(*args, **kwargs)
            finally:
                clock.pop()

        def execute(self, *args: Any, **kwargs: Any) -> str:
            clock.push(activity())
            try:
                return str(super().execute(*args, **kwargs))
            finally:
                clock.pop()

    return TimedSession


# ------------------------------------------------------------------------------------- the run


ACTIVITIES = (
    ("model", "model call (client code in stream/complete)"),
    ("apis", "simulated APIs during inference (ApiSession)"),
    ("solve", "agent loop, rest of solve (render, parse, events)"),
    ("score", "scoring: official checkers"),
    ("score_apis", "scoring: replaying calls on fresh ApiSessions"),
    ("runner", "runner: records, rows, results file"),
    ("idle", "loop idle (waiting on the server), outside tasks"),
)
OUTSIDE = ("apis", "solve", "score", "score_apis", "runner")
"""Activities outside the model call; the model call and the loop's idle time are inside it."""


async def measure(data_dir: Path, fmt: str, concurrency: int, limit: int | None, http: bool,
                  breakdown: bool = True) -> dict[str, Any]:
    """Run the multi-turn set through `BfclTask` and `run_bench` with the gold replay; return the figures.

    Args:
        data_dir: The fetched BFCL folder.
        fmt: Prompt format.
        concurrency: Records in flight.
        limit: Entries per category (``None``: all).
        http: `OpenAICompatible` on the stub server (else the in-process replay).
        breakdown: Split the loop's time by activity (else only the wall time, uninstrumented).
    """
    import psutil

    from qwenkit.bench.bfcl import multiturn
    from qwenkit.bench.bfcl.categories import MULTI_TURN
    from qwenkit.bench.bfcl.task import BfclTask
    from qwenkit.bench.runner import run_bench

    clock = Clock(breakdown)
    stats = Stats()

    class Task(BfclTask):
        """`BfclTask`, its solve and score charged to their phases (tasks they start inherit the phase)."""

        async def solve(self, record: Any) -> dict[str, Any]:
            token = _ENTRY.set(_Entry(record.id))
            try:
                with _phase("solve"):
                    return await _Steps(super().solve(record), clock)  # type: ignore[no-any-return]
            finally:
                _ENTRY.reset(token)

        async def score(self, record: Any, result: dict[str, Any]) -> dict[str, Any]:
            with _phase("score"):
                return await _Steps(super().score(record, result), clock)  # type: ignore[no-any-return]

    loop = asyncio.get_running_loop()
    old_factory = loop.get_task_factory()

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        async def stepped() -> Any:
            return await _Steps(coro, clock)

        return asyncio.Task(stepped(), loop=lp, **kwargs)

    server: StubServer | None = None
    stub_cpu0 = 0.0
    if http:
        from qwenkit.llm.openai_compat import OpenAICompatible

        server = await asyncio.to_thread(StubServer(data_dir, fmt, limit).__enter__)
        inner: Any = OpenAICompatible(MODEL, server.base_url, "EMPTY", max_retries=0)
    else:
        inner = _replay_model(await asyncio.to_thread(gold_plans, data_dir, fmt, limit), fmt)
    model = TimedModel(inner, clock, stats)
    original_session = multiturn.ApiSession
    try:
        stub = psutil.Process(server.proc.pid) if server is not None and server.proc is not None else None
        stub_cpu0 = _cpu(stub) if stub else 0.0
        with tempfile.TemporaryDirectory(prefix="qwenkit-perf-bfcl-") as out:
            task = Task(model, fmt, data_dir, MULTI_TURN, limit=limit)
            if breakdown:
                multiturn.ApiSession = _timed_session_class(original_session, clock)  # type: ignore[misc]
                loop.set_task_factory(factory)
            cpu0 = _cpu()
            clock.reset()
            start = time.perf_counter()
            with _phase("runner"):
                outcome = await _Steps(run_bench(task, out, concurrency=concurrency, progress=False), clock)
            wall = time.perf_counter() - start
            cpu = _cpu() - cpu0
            loop.set_task_factory(old_factory)
        stub_cpu = _cpu(stub) - stub_cpu0 if stub else None
    finally:
        loop.set_task_factory(old_factory)
        multiturn.ApiSession = original_session  # type: ignore[misc]
        await inner.aclose()
        if server is not None:
            server.__exit__()

    seconds = {key: clock.totals.get(key, 0.0) for key, _ in ACTIVITIES if key != "idle"}
    seconds["idle"] = max(0.0, wall - sum(seconds.values()))
    cpu_seconds = {key: clock.cpu.get(key, 0.0) for key, _ in ACTIVITIES if key != "idle"}
    loop_cpu = sum(cpu_seconds.values())
    rows = outcome.rows
    outside = sum(seconds[k] for k in OUTSIDE)
    lat = stats.latencies
    return {
        "backend": ("OpenAICompatible -> stub server (child process, 127.0.0.1, streamed SSE)" if http
                    else "in-process replay (FunctionModel, no HTTP)"),
        "format": fmt, "concurrency": concurrency, "limit": limit,
        "entries": len(rows),
        "by_category": dict(Counter(r.category for r in rows)),
        "valid": sum(r.status == "ok" and bool((r.score or {}).get("valid")) for r in rows),
        "errors": sum(r.status == "error" for r in rows),
        "model_calls": stats.calls,
        "wall_s": wall,
        "seconds": seconds,
        "shares": {k: v / wall for k, v in seconds.items()},
        "inside_model_share": 1 - outside / wall,
        "outside_model_share": outside / wall,
        "cpu_seconds": cpu_seconds,
        "cpu_outside_model_share": (sum(cpu_seconds[k] for k in OUTSIDE) / loop_cpu) if loop_cpu else None,
        "breakdown": breakdown,
        "model_latency_sum_s": sum(lat),
        "model_latency_mean_s": statistics.fmean(lat) if lat else 0.0,
        "client_cpu_s": cpu,
        "stub_server_cpu_s": stub_cpu,
    }


def _cpu(proc: Any = None) -> float:
    import psutil

    times = (proc or psutil.Process()).cpu_times()
    return float(times.user + times.system)


def report(f: dict[str, Any]) -> list[str]:
    """The figures as report lines."""
    wall = f["wall_s"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cats = ", ".join(f"{c} {n}" for c, n in f["by_category"].items())
    lines = [
        f"BFCL multi-turn harness cost — {platform.node()} ({os.cpu_count()} CPUs, load average {load}), "
        f"Python {sys.version.split()[0]}",
        f"  model: {f['backend']}, zero latency, replaying the ground truth",
        f"  format {f['format']}, mode fc, concurrency {f['concurrency']}, limit per category {f['limit'] or 'all'}",
        f"  entries {f['entries']} ({cats}); valid {f['valid']}/{f['entries']}, errors {f['errors']}; "
        f"model calls {f['model_calls']}",
        f"  wall time {wall:.2f} s ({f['entries'] / wall:.1f} entries/s, {f['model_calls'] / wall:.1f} calls/s)"
        + ("" if f["breakdown"] else ", uninstrumented (--no-breakdown)"),
    ]
    if f["breakdown"]:
        cpu = f["cpu_seconds"]
        loop_cpu = sum(cpu.values()) or 1.0
        head = "  event-loop time by activity, exclusive:"
        lines.append(f"{head:<57}{'wall':>10}{'share':>7}{'loop CPU':>13}{'share':>8}")
        for key, label in ACTIVITIES:
            used = f"{cpu[key]:9.2f} s {cpu[key] / loop_cpu:7.1%}" if key in cpu else ""
            lines.append(f"    {label:<52} {f['seconds'][key]:8.2f} s {f['shares'][key]:6.1%}  {used}")
        lines.append(
            f"  outside the model call (harness): {f['outside_model_share']:.1%} of wall "
            f"(inside: client code + loop idle, {f['inside_model_share']:.1%}); "
            f"{f['cpu_outside_model_share']:.1%} of the loop's CPU")
    lines += [
        f"  model call latency, summed over calls (they overlap at concurrency > 1): {f['model_latency_sum_s']:.2f} s, "
        f"mean {f['model_latency_mean_s'] * 1000:.2f} ms",
        f"  CPU: this process {f['client_cpu_s']:.2f} s"
        + ("" if f["stub_server_cpu_s"] is None else f", stub server {f['stub_server_cpu_s']:.2f} s"),
    ]
    return lines


def _data_dir(given: str | None) -> Path:
    from qwenkit.bench.bfcl.data import cache_dir

    env = os.environ.get("QWENKIT_BFCL_FULL_DIR")
    path = Path(given or env or cache_dir())
    if not (path / "package" / "bfcl_eval" / "__init__.py").is_file():
        raise SystemExit(f"python -m qwenkit.bench.perf bfcl: error: no fetched bfcl-eval package at {path}: "
                         "run 'qwenkit bench fetch bfcl' (or give --data-dir)")
    return path


async def bench_bfcl(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; print the report unless ``--json``."""
    if args.concurrency < 1 or (args.limit is not None and args.limit < 1):
        raise SystemExit("python -m qwenkit.bench.perf bfcl: error: --concurrency and --limit must be at least 1")
    figures = await measure(_data_dir(args.data_dir), args.format, args.concurrency, args.limit, not args.no_http,
                            breakdown=not args.no_breakdown)
    if not getattr(args, "json", False):
        print("\n".join(report(figures)))
    return figures


def add_bfcl(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``bfcl`` subcommand to ``python -m qwenkit.bench.perf``."""
    p = sub.add_parser("bfcl", help="BFCL multi-turn set against a zero-latency gold replay: the harness's cost")
    p.add_argument("--concurrency", type=int, default=16, help="records in flight (default 16)")
    p.add_argument("--format", choices=FORMATS, default="nous", help="prompt format (default nous)")
    p.add_argument("--limit", type=int, help="entries per category (default: all 200)")
    p.add_argument("--data-dir", help="the fetched BFCL folder (default: $QWENKIT_BFCL_FULL_DIR, else the cache)")
    p.add_argument("--no-http", action="store_true",
                   help="replay in process (FunctionModel) instead of OpenAICompatible on a stub server")
    p.add_argument("--no-breakdown", action="store_true",
                   help="only the wall time, without the instrumentation that splits it by activity")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the figures as JSON")
    p.set_defaults(bench=bench_bfcl)


def main(argv: Sequence[str] | None = None) -> int:
    """``--serve``: the stub server (used by `StubServer`)."""
    p = argparse.ArgumentParser(prog="python -m qwenkit.bench.perf_bfcl")
    p.add_argument("--serve", action="store_true", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--limit", type=int)
    args = p.parse_args(argv)
    plans = gold_plans(Path(args.data_dir), args.format, args.limit)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(plans, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
