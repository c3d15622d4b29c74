"""Throughput benchmark of the benchmark runner against a local stub server with a fixed latency.

A stub OpenAI-compatible server (plain asyncio streams, HTTP/1.1 keep-alive, in its own process) answers
every ``/v1/chat/completions`` after sleeping ``L`` seconds. The real runner, with the real
``OpenAICompatible`` backend at concurrency ``C``, should reach ``C / L`` requests per second; the
benchmark prints the achieved rate and its ratio to that bound (the goal is at least 0.8)::

    python -m qwenkit.bench.perf_runner --concurrency 16 --latency 0.2 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path = [*lines[0].split(" "), "", ""][:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            if length:
                await reader.readexactly(length)
            if method == "POST" and path.endswith("/chat/completions"):
                await asyncio.sleep(latency)
                status, body = "200 OK", _completion_body()
            elif path.endswith("/models"):
                status, body = "200 OK", _MODELS
            else:
                status, body = "404 Not Found", b'{"error": {"message": "not found"}}'
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                         "Connection: keep-alive\r\n\r\n".encode() + body)
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


class StubServerProcess:
    """The stub server in a child process (so it does not share the runner's CPU or event loop).

    Args:
        latency: Seconds per chat completion.
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> StubServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenkit.bench.perf_runner", "--serve", "--latency", str(self.latency)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"the stub server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
    """

    requests: int
    concurrency: int
    latency: float
    elapsed_s: float
    errors: int

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


async def measure(
    base_url: str | None, concurrency: int, latency: float, requests: int, progress: bool = False,
) -> PerfResult:
    """Run `PingTask` through `run_bench` and time it.

    Args:
        base_url: The stub server; ``None`` uses `SleepModel` (no HTTP: the runner's own overhead).
        concurrency: Runner concurrency.
        latency: The server's latency (for the bound).
        requests: Records to run.
        progress: Show the progress bar.
    """
    from qwenkit.llm.openai_compat import OpenAICompatible

    model: Any = SleepModel(latency) if base_url is None else OpenAICompatible(
        MODEL, base_url, "EMPTY", timeout=30.0, max_retries=0)
    try:
        with tempfile.TemporaryDirectory(prefix="qwenkit-perf-") as out:
            start = time.perf_counter()
            outcome = await run_bench(PingTask(model, requests), out, concurrency=concurrency, timeout=60.0,
                                      progress=progress)
            elapsed = time.perf_counter() - start
    finally:
        if base_url is not None:
            await model.aclose()
    errors = sum(r.status != "ok" for r in outcome.rows)
    return PerfResult(requests, concurrency, latency, elapsed, errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``--serve`` runs the stub server; otherwise run the benchmark and print the ratio."""
    p = argparse.ArgumentParser(prog="python -m qwenkit.bench.perf_runner",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency", type=float, default=0.2, help="stub server seconds per request")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--progress", action="store_true", help="show the runner's progress bar")
    p.add_argument("--no-http", action="store_true",
                   help="measure the runner alone: a model that sleeps L instead of the HTTP stub server")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.latency))
        return 0
    if args.no_http:
        result = asyncio.run(measure(None, args.concurrency, args.latency, args.requests, args.progress))
    else:
        # Warm-up: the first requests pay for imports and connection setup, not the runner.
        with StubServerProcess(args.latency) as server:
            asyncio.run(measure(server.base_url, args.concurrency, args.latency, min(args.concurrency, args.requests)))
            result = asyncio.run(measure(server.base_url, args.concurrency, args.latency, args.requests, args.progress))
    backend = "SleepModel (no HTTP)" if args.no_http else "OpenAICompatible -> stub server"
    print(f"runner throughput via {backend}: {result.requests} requests, concurrency C={result.concurrency}, "
          f"latency L={result.latency:g} s, {result.elapsed_s:.2f} s, errors {result.errors}")
    print(f"achieved {result.achieved:.1f} req/s; C/L = {result.bound:.1f} req/s; ratio {result.ratio:.3f} "
          f"(goal >= 0.8: {'met' if result.ratio >= 0.8 else 'NOT met'})")
    return 0 if result.ratio >= 0.8 and result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
