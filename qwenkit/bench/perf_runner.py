"""Throughput benchmark of the benchmark runner against a local stub server with a fixed latency.

A stub OpenAI-compatible server (plain asyncio streams, HTTP/1.1 keep-alive, in its own process) answers
every ``/v1/chat/completions`` after sleeping ``L`` seconds. The real runner, with the real
``OpenAICompatible`` backend at concurrency ``C``, should reach ``C / L`` requests per second; the
benchmark prints the achieved rate and its ratio to that bound (the goal is at least 0.9)::

    python -m qwenkit.bench.perf runner --concurrency 64 --latency 0.2

The default run is ``10 x C`` requests, a whole number of waves of ``C``: with ``N`` not a multiple of ``C``
the last wave is partly empty and even a free client could not reach ``C / L``. The machine may be shared,
so each round also prints the CPU time the client process (runner + backend) and the stub server spent per
request: that figure does not depend on other processes, and ``1 / (C/L)`` seconds is the most the client
may spend on one request, on a core of its own, for the bound to be reachable at all.

Over HTTP it then measures a baseline in the same run (``--no-baseline`` skips it): plain aiohttp workers, no
qwenkit code, against the same stub server. aiohttp is the HTTP client the fast path used before its own
connections (`qwenkit.llm._openai.h1`); ``qwenkit / baseline`` above 1 means the whole runner, backend
included, does more per second than bare aiohttp requests on this machine and this Python.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from qwenkit.bench._stub_process import StubProcess, read_request, response
from qwenkit.bench.report import category_summary
from qwenkit.bench.results import BenchRecord, ResultRow, Summary
from qwenkit.bench.runner import run_bench
from qwenkit.llm.base import ChatModel, ChatRequest, Sampling
from qwenkit.types import Completion, UserMessage

MODEL = "stub"


def _completion_body() -> bytes:
    return json.dumps({
        "id": "cmpl-stub", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }).encode()


_MODELS = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "qwenkit"}]}).encode()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    try:
        while (request := await read_request(reader)) is not None:
            method, path, _ = request
            if method == "POST" and path.endswith("/chat/completions"):
                await asyncio.sleep(latency)
                status, body = "200 OK", _completion_body()
            elif path.endswith("/models"):
                status, body = "200 OK", _MODELS
            else:
                status, body = "404 Not Found", b'{"error": {"message": "not found"}}'
            writer.write(response(status, body))
            await writer.drain()
    finally:
        writer.close()


async def serve(latency: float, port: int = 0, ready: Any = None) -> None:
    """Serve the stub on 127.0.0.1 until cancelled; print ``PORT <n>`` once listening.

    Args:
        latency: Seconds slept before each chat completion answer.
        port: Port to bind (0: a free one).
        ready: Called with the bound port, when given (instead of printing it).
    """
    server = await asyncio.start_server(lambda r, w: _handle(r, w, latency), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    else:
        print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


class StubServerProcess(StubProcess):
    """The stub server in a child process (so it does not share the runner's CPU or event loop).

    Args:
        latency: Seconds per chat completion.
    """

    def __init__(self, latency: float) -> None:
        super().__init__("qwenkit.bench.perf_runner", ["--latency", str(latency)])
        self.latency = latency


class SleepModel:
    """A `ChatModel` that sleeps ``latency`` and answers "pong": the runner's own overhead, without HTTP."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    @property
    def name(self) -> str:
        return MODEL

    async def complete(self, request: ChatRequest) -> Completion:
        await asyncio.sleep(self.latency)
        return Completion(text="pong", finish_reason="stop")

    def stream(self, request: ChatRequest) -> Any:
        raise NotImplementedError


class PingTask:
    """N one-message requests; every answered record scores 1."""

    name = "perf-runner"

    def __init__(self, model: ChatModel, n: int) -> None:
        self.model = model
        self.n = n

    def config(self) -> dict[str, Any]:
        return {"bench": self.name, "model": self.model.name, "n": self.n}

    def records(self) -> list[BenchRecord]:
        return [BenchRecord(f"ping-{i}", "ping", i) for i in range(self.n)]

    async def solve(self, record: BenchRecord) -> dict[str, Any]:
        request = ChatRequest(messages=[UserMessage(content=f"ping {record.data}")], sampling=Sampling(max_tokens=8))
        completion = await self.model.complete(request)
        return {"text": completion.text}

    async def score(self, record: BenchRecord, result: dict[str, Any]) -> dict[str, Any]:
        return {"value": 1.0 if result["text"] == "pong" else 0.0, "reason": "ok"}

    def summarize(self, rows: Sequence[ResultRow]) -> Summary:
        return category_summary(rows)


@dataclass(frozen=True)
class PerfResult:
    """What the benchmark measured.

    Attributes:
        requests: Requests made.
        concurrency: Runner concurrency ``C``.
        latency: Server latency ``L`` in seconds.
        elapsed_s: Wall-clock seconds of the run.
        errors: Records that errored.
        client_cpu_s: CPU seconds (user + system) this process spent in the run.
        server_cpu_s: CPU seconds the stub server process spent in the run (``None`` without one).
    """

    requests: int
    concurrency: int
    latency: float
    elapsed_s: float
    errors: int
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None

    @property
    def achieved(self) -> float:
        """Requests per second reached."""
        return self.requests / self.elapsed_s

    @property
    def bound(self) -> float:
        """``C / L``: the rate a runner with no overhead would reach."""
        return self.concurrency / self.latency

    @property
    def ratio(self) -> float:
        return self.achieved / self.bound

    @property
    def client_cpu_per_request_s(self) -> float:
        return self.client_cpu_s / self.requests


GOAL = 0.9
"""The ratio achieved / (C/L) the runner should reach."""


def _cpu_seconds(proc: psutil.Process | None = None) -> float:
    times = (proc or psutil.Process()).cpu_times()
    return times.user + times.system


async def measure(
    model: ChatModel, concurrency: int, latency: float, requests: int, progress: bool = False,
    server_pid: int | None = None,
) -> PerfResult:
    """Run `PingTask` through `run_bench` with ``model`` and time it.

    Args:
        model: The backend (`OpenAICompatible` on the stub server, or `SleepModel`).
        concurrency: Runner concurrency.
        latency: The server's latency (for the bound).
        requests: Records to run.
        progress: Show the progress bar.
        server_pid: The stub server's process, whose CPU time is measured too.
    """
    server = psutil.Process(server_pid) if server_pid is not None else None
    with tempfile.TemporaryDirectory(prefix="qwenkit-perf-") as out:
        cpu0, server0 = _cpu_seconds(), _cpu_seconds(server) if server else 0.0
        start = time.perf_counter()
        outcome = await run_bench(PingTask(model, requests), out, concurrency=concurrency, timeout=60.0,
                                  progress=progress)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu0
        server_cpu = _cpu_seconds(server) - server0 if server else None
    errors = sum(r.status != "ok" for r in outcome.rows)
    return PerfResult(requests, concurrency, latency, elapsed, errors, cpu, server_cpu)


async def measure_rounds(
    base_url: str | None, concurrency: int, latency: float, requests: int, rounds: int,
    progress: bool = False, server_pid: int | None = None,
) -> list[PerfResult]:
    """A warm-up round of ``concurrency`` requests, then ``rounds`` measured ones, all with one backend.

    One `OpenAICompatible` serves every round, as one serves a whole benchmark run: the warm-up opens its
    connections and pays for first-call imports, so the rounds measure the steady state.

    Args:
        base_url: The stub server; ``None`` uses `SleepModel` (no HTTP: the runner's own overhead).
        concurrency: Runner concurrency.
        latency: The server's latency (for the bound).
        requests: Records per measured round.
        rounds: Measured rounds.
        progress: Show the progress bar.
        server_pid: The stub server's process, whose CPU time is measured too.
    """
    from qwenkit.llm.openai_compat import OpenAICompatible

    model: Any = SleepModel(latency) if base_url is None else OpenAICompatible(
        MODEL, base_url, "EMPTY", timeout=30.0, max_retries=0)
    try:
        await measure(model, concurrency, latency, concurrency)
        return [await measure(model, concurrency, latency, requests, progress, server_pid) for _ in range(rounds)]
    finally:
        if base_url is not None:
            await model.aclose()


async def measure_bare(base_url: str, concurrency: int, latency: float, requests: int, rounds: int,
                       server_pid: int | None = None) -> list[PerfResult]:
    """The baseline: ``concurrency`` plain aiohttp workers posting the same request, no qwenkit code.

    A well-kept HTTP client (the one qwenkit's fast path used before), with a pool as large as the
    concurrency and the JSON decoded, measured against the same stub server in the same run: the best any
    aiohttp-based runner can do on this machine and this Python.
    """
    import aiohttp

    url = base_url.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}).encode()
    server = psutil.Process(server_pid) if server_pid is not None else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> bool:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                return json.loads(await response.read())["choices"][0]["message"]["content"] == "pong"

        async def run(n: int) -> PerfResult:
            pending = iter(range(n))
            failed = 0

            async def worker() -> None:
                nonlocal failed
                for _ in pending:
                    failed += not await one()

            cpu0, server0 = _cpu_seconds(), _cpu_seconds(server) if server else 0.0
            start = time.perf_counter()
            await asyncio.gather(*[worker() for _ in range(min(concurrency, n))])
            elapsed = time.perf_counter() - start
            server_cpu = _cpu_seconds(server) - server0 if server else None
            return PerfResult(n, concurrency, latency, elapsed, failed, _cpu_seconds() - cpu0, server_cpu)

        await run(concurrency)  # warm-up: opens the connections
        return [await run(requests) for _ in range(rounds)]


def _round_line(i: int, r: PerfResult) -> str:
    server = "" if r.server_cpu_s is None else f", stub server {r.server_cpu_s / r.requests * 1000:.2f} ms"
    return (f"  round {i}: {r.elapsed_s:.2f} s, achieved {r.achieved:.1f} req/s, ratio {r.ratio:.3f}, "
            f"errors {r.errors}; CPU per request: client {r.client_cpu_per_request_s * 1000:.2f} ms{server}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``--serve`` runs the stub server; otherwise run the benchmark and print the ratio."""
    p = argparse.ArgumentParser(prog="python -m qwenkit.bench.perf runner",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.2, help="stub server seconds per request")
    p.add_argument("--requests", type=int, help="requests per round (default: 10 x concurrency)")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds; the median ratio is the result")
    p.add_argument("--progress", action="store_true", help="show the runner's progress bar")
    p.add_argument("--no-http", action="store_true",
                   help="measure the runner alone: a model that sleeps L instead of the HTTP stub server")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the baseline (plain aiohttp workers against the same stub server)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.latency))
        return 0
    if args.concurrency < 1 or args.rounds < 1 or not args.latency > 0 or (args.requests or 1) < 1:
        p.error("--concurrency, --rounds and --requests must be at least 1, --latency positive")
    requests = args.requests or 10 * args.concurrency
    baseline: list[PerfResult] = []
    if args.no_http:
        backend = "SleepModel (no HTTP)"
        results = asyncio.run(measure_rounds(None, args.concurrency, args.latency, requests, args.rounds,
                                             args.progress))
    else:
        backend = "OpenAICompatible -> stub server"
        with StubServerProcess(args.latency) as server:
            pid = server.proc.pid if server.proc is not None else None
            results = asyncio.run(measure_rounds(server.base_url, args.concurrency, args.latency, requests,
                                                 args.rounds, args.progress, pid))
            if not args.no_baseline:
                baseline = asyncio.run(measure_bare(server.base_url, args.concurrency, args.latency, requests,
                                                    args.rounds, pid))
    first = results[0]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"runner throughput via {backend}: {requests} requests x {args.rounds} rounds, concurrency "
          f"C={first.concurrency}, latency L={first.latency:g} s; {os.cpu_count()} CPUs, load average {load}; "
          f"Python {platform.python_version()}")
    for i, r in enumerate(results, 1):
        print(_round_line(i, r))
    ratio = statistics.median(r.ratio for r in results)
    if baseline:
        print("baseline, plain aiohttp workers (no qwenkit code) against the same stub server:")
        for i, r in enumerate(baseline, 1):
            print(_round_line(i, r))
        bare = statistics.median(r.ratio for r in baseline)
        print(f"baseline median ratio {bare:.3f}; qwenkit / baseline = {ratio / bare:.3f}")
    errors = sum(r.errors for r in results)
    budget = 1000 / first.bound
    print(f"C/L = {first.bound:.1f} req/s (at most {budget:.2f} ms of client CPU per request); median ratio "
          f"{ratio:.3f} (goal >= {GOAL:g}: {'met' if ratio >= GOAL else 'NOT met'})")
    return 0 if ratio >= GOAL and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
