"""Load benchmark of the agent server (not a test): many conversations at once over SSE.

``python -m qwenkit.server.loadbench [--conversations 50]`` starts the server on a free 127.0.0.1 port with
a scripted model that runs one code-interpreter cell per turn, opens that many conversations at once,
posts a turn in each and reads its event stream to the end, deletes them all, then checks that no kernel
process is left. It prints latency percentiles (first event, whole turn) and exits non-zero when a turn
failed or a kernel leaked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
import psutil
from pydantic import BaseModel

from qwenkit.agents.agent import Agent
from qwenkit.llm.base import ChatRequest
from qwenkit.server.app import create_app
from qwenkit.testing import FunctionModel
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter

CELL = "import math\nprint('sum', sum(math.sqrt(i) for i in range(10000)))"


def _reply(request: ChatRequest) -> str:
    if request.messages[-1].role == "user":
        return "Computing.\n✿FUNCTION✿: code_interpreter\n✿ARGS✿: " + json.dumps({"code": CELL})
    return "Done."


class LoadReport(BaseModel):
    """What the benchmark measured (seconds)."""

    conversations: int
    completed: int
    failed: list[str]
    first_event_s: dict[str, float]
    turn_s: dict[str, float]
    wall_s: float
    kernels_after_delete: int

    @property
    def ok(self) -> bool:
        return self.completed == self.conversations and not self.failed and self.kernels_after_delete == 0


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"p50": round(cuts[49], 3), "p90": round(cuts[89], 3), "p99": round(cuts[98], 3),
            "max": round(max(values), 3)}


def _kernel_processes() -> int:
    count = 0
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.cmdline())
            if ("bwrap" in cmd or "ipykernel" in cmd) and proc.status() != psutil.STATUS_ZOMBIE:
                count += 1
    return count


async def _one(client: httpx.AsyncClient) -> tuple[float, float, str]:
    start = time.monotonic()
    cid = (await client.post("/api/conversations")).json()["id"]
    first = 0.0
    status = "no turn_ended"
    async with client.stream("POST", f"/api/conversations/{cid}/turns", json={"prompt": "compute"}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                first = first or time.monotonic() - start
                data = json.loads(line[6:])
                if data.get("type") == "turn_ended":
                    status = data["status"]
    return first, time.monotonic() - start, status if status == "completed" else f"{cid}: {status}"


async def load_benchmark(conversations: int = 50, cell_timeout: float = 120.0) -> LoadReport:
    """Run the benchmark; see the module's docstring."""

    def make() -> Agent[Any]:
        return Agent(FunctionModel(_reply), tools=[CodeInterpreter(pool_size=0, timeout=cell_timeout)],
                     format="qwen", max_steps=3)

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(make), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the server did not start")
        await asyncio.sleep(0.02)
    limits = httpx.Limits(max_connections=conversations + 10)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=cell_timeout + 120,
                                     limits=limits) as client:
            wall = time.monotonic()
            results = await asyncio.gather(*(_one(client) for _ in range(conversations)), return_exceptions=True)
            wall = time.monotonic() - wall
            listed = (await client.get("/api/conversations")).json()["conversations"]
            await asyncio.gather(*(client.delete(f"/api/conversations/{c['id']}") for c in listed))
            deadline = time.monotonic() + 30
            while _kernel_processes() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            leaked = _kernel_processes()
    finally:
        server.should_exit = True
        await serving
    done = [r for r in results if isinstance(r, tuple) and r[2] == "completed"]
    failed = [r[2] if isinstance(r, tuple) else f"{type(r).__name__}: {r}" for r in results
              if not (isinstance(r, tuple) and r[2] == "completed")]
    return LoadReport(conversations=conversations, completed=len(done), failed=failed,
                      first_event_s=_percentiles([r[0] for r in done]), turn_s=_percentiles([r[1] for r in done]),
                      wall_s=round(wall, 3), kernels_after_delete=leaked)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report as JSON; 0 when every turn completed and no kernel leaked."""
    p = argparse.ArgumentParser(prog="python -m qwenkit.server.loadbench")
    p.add_argument("--conversations", type=int, default=50)
    args = p.parse_args(argv)
    report = asyncio.run(load_benchmark(args.conversations))
    print(json.dumps(report.model_dump(), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
