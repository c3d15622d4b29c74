"""Performance benchmarks, one subcommand each: ``python -m qwenkit.bench.perf <name>``.

``loop``: the agent loop's overhead per conversation (scripted model), next to Qwen-Agent's `FnCallAgent`
when it is installed (`qwenkit.bench.perf_loop`). ``parse``: the prompt formats' parsers on big hostile
replies (`qwenkit.bench.perf_parse`). ``runner``: benchmark-runner throughput (`qwenkit.bench.perf_runner`).
``trace``: OpenTelemetry's cost per run and per span (`qwenkit.bench.perf_trace`). ``bfcl``: the
harness's cost on the BFCL multi-turn set against a zero-latency gold replay (`qwenkit.bench.perf_bfcl`).

``sandbox``: the code interpreter's kernels, from one run on this machine:

- cold start of an isolated (bubblewrap) kernel, until it answers;
- warm ``1+1`` round trip through `KernelSession.execute`, next to raw ``jupyter_client`` on an
  unisolated kernel (its ``execute_interactive``, and the minimal send/iopub/reply loop), and the
  ratios (target <= 1.2x);
- session acquire from a warm `KernelPool` (target <= 50 ms);
- interrupt recovery: from a cell's timeout until the interrupted kernel is idle again.

These are measurements, not tests: nothing fails when a target is missed; the report says so.
To add a benchmark, write ``async def bench_<name>(args) -> dict`` and register it in `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


class _RawKernel:
    """Plain jupyter_client: the default kernel spec over tcp, no sandbox, no qwenkit code in the path."""

    async def __aenter__(self) -> _RawKernel:
        from jupyter_client.manager import AsyncKernelManager

        from qwenkit.sandbox.kernel import KERNEL_ARGS

        self.km = AsyncKernelManager(kernel_name="python3")
        # The same kernel options as qwenkit's kernels (no sqlite history, no colours), so that the
        # comparison measures isolation and client, not kernel configuration.
        await self.km.start_kernel(
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, extra_arguments=list(KERNEL_ARGS),
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kc.stop_channels()
        await self.km.shutdown_kernel(now=True)

    async def interactive(self) -> float:
        """``execute_interactive``: jupyter_client's own execute-and-collect call."""
        t0 = time.perf_counter()
        reply = await self.kc.execute_interactive("1+1", output_hook=lambda msg: None, timeout=30)
        elapsed = time.perf_counter() - t0
        assert reply["content"]["status"] == "ok"
        return elapsed

    async def minimal(self) -> float:
        """The least a client can do: send, read iopub until idle, read the reply."""
        t0 = time.perf_counter()
        msg_id = self.kc.execute("1+1")
        while True:
            msg = await self.kc.get_iopub_msg(timeout=30)
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                break
        reply = await self.kc.get_shell_msg(timeout=30)
        elapsed = time.perf_counter() - t0
        assert reply["parent_header"]["msg_id"] == msg_id
        return elapsed


async def bench_sandbox(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the sandbox's kernels; return the figures (seconds) and print a report."""
    from qwenkit.sandbox import KernelFactory, KernelPool, SessionConfig

    factory = KernelFactory()
    factory.policy.ensure_available()
    await factory.prepare()  # one-time font cache, not part of a kernel's start

    cold = []
    for _ in range(args.cold):
        t0 = time.perf_counter()
        kernel = await factory.acquire_kernel()
        cold.append(time.perf_counter() - t0)
        await kernel.close()

    ours: list[float] = []
    raw: list[float] = []
    minimal: list[float] = []
    acquire: list[float] = []
    recovery: list[float] = []
    async with KernelPool(size=2, factory=factory, idle_timeout=None) as pool, _RawKernel() as plain:
        async with pool.session(SessionConfig(timeout=30)) as session:
            for _ in range(args.warmup):
                await session.execute("1+1")
                await plain.interactive()
                await plain.minimal()
            # Alternate the order within each pair: a kernel that was just used answers faster than one
            # that sat idle while the other was measured, and that must not favour either side.
            async def ours_once() -> None:
                t0 = time.perf_counter()
                result = await session.execute("1+1")
                ours.append(time.perf_counter() - t0)
                assert result.result == "2"

            async def raw_once(i: int) -> None:
                if (i // 2) % 2 == 0:
                    raw.append(await plain.interactive())
                else:
                    minimal.append(await plain.minimal())

            for i in range(args.rounds):
                if i % 2 == 0:
                    await ours_once()
                    await raw_once(i)
                else:
                    await raw_once(i)
                    await ours_once()

            for _ in range(args.interrupts):
                timeout = 0.5
                t0 = time.perf_counter()
                result = await session.execute("while True:\n    pass", timeout=timeout)
                recovery.append(time.perf_counter() - t0 - timeout)
                assert result.interrupted, result

        for _ in range(args.acquires):
            await pool.wait_full()
            t0 = time.perf_counter()
            session = await pool.session().start()
            acquire.append(time.perf_counter() - t0)
            await session.close()

    figures = {
        "cold_start_p50_s": statistics.median(cold),
        "cold_start_min_s": min(cold),
        "cold_start_max_s": max(cold),
        "round_trip_p50_s": _pct(ours, 0.5),
        "round_trip_p95_s": _pct(ours, 0.95),
        "raw_round_trip_p50_s": _pct(raw, 0.5),
        "raw_round_trip_p95_s": _pct(raw, 0.95),
        "raw_minimal_round_trip_p50_s": _pct(minimal, 0.5),
        "raw_minimal_round_trip_p95_s": _pct(minimal, 0.95),
        "round_trip_ratio_p50": _pct(ours, 0.5) / _pct(raw, 0.5),
        "round_trip_ratio_vs_minimal_p50": _pct(ours, 0.5) / _pct(minimal, 0.5),
        "pool_acquire_p50_s": _pct(acquire, 0.5),
        "interrupt_recovery_p50_s": _pct(recovery, 0.5),
        "interrupt_recovery_max_s": max(recovery),
        "samples": {
            "cold": len(cold), "round_trips": len(ours), "raw": len(raw), "raw_minimal": len(minimal),
            "acquires": len(acquire), "interrupts": len(recovery),
        },
    }
    ratio_ok = figures["round_trip_ratio_p50"] <= 1.2
    strict_ok = figures["round_trip_ratio_vs_minimal_p50"] <= 1.2
    acquire_ok = figures["pool_acquire_p50_s"] <= 0.050
    lines = [
        f"qwenkit sandbox benchmark — {platform.node()} ({os.cpu_count()} CPUs), Python {sys.version.split()[0]}, "
        f"policy {factory.policy.name}",
        f"  cold start, isolated kernel     p50 {_ms(figures['cold_start_p50_s'])}  "
        f"(min {_ms(min(cold))}, max {_ms(max(cold))}, n={len(cold)})",
        f"  warm 1+1 round trip, qwenkit    p50 {_ms(figures['round_trip_p50_s'])}  "
        f"p95 {_ms(figures['round_trip_p95_s'])}  (n={len(ours)})",
        f"  warm 1+1, raw jupyter_client    p50 {_ms(figures['raw_round_trip_p50_s'])}  "
        f"p95 {_ms(figures['raw_round_trip_p95_s'])}  (unisolated, tcp, execute_interactive, n={len(raw)})",
        f"  warm 1+1, raw minimal loop      p50 {_ms(figures['raw_minimal_round_trip_p50_s'])}  "
        f"p95 {_ms(figures['raw_minimal_round_trip_p95_s'])}  (unisolated, tcp, send + iopub idle + reply)",
        f"  ratio qwenkit / raw (p50)       {figures['round_trip_ratio_p50']:.2f}x vs execute_interactive "
        f"({'met' if ratio_ok else 'MISSED'}), {figures['round_trip_ratio_vs_minimal_p50']:.2f}x vs minimal loop "
        f"({'met' if strict_ok else 'MISSED'}); target <= 1.2x",
        f"  pool session acquire            p50 {_ms(figures['pool_acquire_p50_s'])}  "
        f"(target <= 50 ms: {'met' if acquire_ok else 'MISSED'}, n={len(acquire)})",
        f"  interrupt recovery              p50 {_ms(figures['interrupt_recovery_p50_s'])}  "
        f"(max {_ms(max(recovery))}; from the timeout until the kernel is idle, n={len(recovery)})",
    ]
    if not args.json:
        print("\n".join(lines))
    return figures


def _add_sandbox(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sandbox", help="code-interpreter kernels: cold start, round trip, pool, interrupts")
    p.add_argument("--rounds", type=int, default=1000, help="warm round trips measured through qwenkit "
                   "(and as many raw ones, half with each raw client)")
    p.add_argument("--warmup", type=int, default=20, help="round trips before measuring")
    p.add_argument("--cold", type=int, default=5, help="cold starts measured")
    p.add_argument("--acquires", type=int, default=10, help="pool acquires measured")
    p.add_argument("--interrupts", type=int, default=5, help="interrupt recoveries measured")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the figures as JSON")
    p.set_defaults(bench=bench_sandbox)


async def bench_parse(args: argparse.Namespace) -> dict[str, Any]:
    """Time the prompt formats' parsers on big hostile replies (`qwenkit.bench.perf_parse`)."""
    from qwenkit.bench.perf_parse import FORMAT_NAMES, run

    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else list(FORMAT_NAMES)
    unknown = sorted(set(formats) - set(FORMAT_NAMES))
    if unknown or not formats:
        raise SystemExit(f"python -m qwenkit.bench.perf parse: error: --formats: unknown format "
                         f"{', '.join(unknown) or '(none given)'}; choose from {', '.join(FORMAT_NAMES)}")
    quiet = getattr(args, "json", False)
    out = (lambda line: print(line, file=sys.stderr)) if quiet else print
    # Parsing megabytes blocks; keep it off this loop like any other blocking work.
    return await asyncio.to_thread(run, args.size_mb, formats, out=out)


def _add_parse(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from qwenkit._cli.args import positive_float

    p = sub.add_parser("parse", help="prompt-format parsers on big hostile replies: seconds per MB, linearity")
    p.add_argument("--size-mb", type=positive_float, default=5.0, help="size of the big reply in MB (default 5)")
    p.add_argument("--formats", help="comma-separated formats to measure (default: all)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the figures as JSON")
    p.set_defaults(bench=bench_parse)


def _add_loop(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from qwenkit.bench.perf_loop import add_loop

    add_loop(sub)


def _add_trace(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from qwenkit.bench.perf_trace import add_trace

    add_trace(sub)


def _add_bfcl(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from qwenkit.bench.perf_bfcl import add_bfcl

    add_bfcl(sub)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    _add_sandbox, _add_loop, _add_parse, _add_trace, _add_bfcl,
]
"""Each adds one ``perf <name>`` subparser whose ``bench`` default is ``async (args) -> dict``."""


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["runner"]:  # the runner benchmark starts its own stub server process
        from qwenkit.bench.perf_runner import main as runner_main

        return runner_main(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m qwenkit.bench.perf", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a report")
    sub = parser.add_subparsers(dest="name", required=True, metavar="BENCHMARK")
    for add in SUBCOMMANDS:
        add(sub)
    sub.add_parser("runner", help="benchmark runner throughput against a stub server (see perf_runner --help)")
    args = parser.parse_args(args_list)
    bench: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]] = args.bench
    figures = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
