"""Benchmark: the gateway provider's warm ``1+1`` round trip next to the local provider's.

A warm round trip is one `KernelSession.execute("1+1")` on a kernel that is already running: what
a model's tool call costs beyond the code itself. ``python -m qwenkit.bench.perf`` wires it in.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from qwenkit.errors import BenchError
from qwenkit.sandbox.gateway.provider import GatewayProvider
from qwenkit.sandbox.kernel import KernelFactory
from qwenkit.sandbox.provider import KernelProvider
from qwenkit.sandbox.session import KernelSession, SessionConfig


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def _round_trips(provider: KernelProvider, rounds: int, warmup: int = 3) -> list[float]:
    async with KernelSession(SessionConfig(timeout=30), source=provider) as session:
        for _ in range(warmup):
            await session.execute("1+1")
        times: list[float] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            result = await session.execute("1+1")
            times.append(time.perf_counter() - t0)
            if result.result != "2":
                raise BenchError(f"1+1 gave {result.result!r} ({result.to_observation()[:200]})")
    return times


def _summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _quantile(times, 0.5) * 1000, "p90_ms": _quantile(times, 0.9) * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
    }


async def gateway_round_trip(url: str, token: str | None = None, rounds: int = 50) -> dict[str, Any]:
    """Time warm ``1+1`` round trips on a gateway kernel and on a local one, print and return them.

    Args:
        url: The gateway's base URL (``gateway:`` prefix allowed).
        token: Its token (default: ``QWENKIT_GATEWAY_TOKEN``).
        rounds: Timed round trips per provider (after 3 untimed ones).

    Returns:
        ``{"rounds", "gateway": {p50_ms, p90_ms, mean_ms}, "local": {...}, "ratio_p50", "ratio_p90"}``
        (ratios: gateway over local).

    Raises:
        ConfigError: The gateway cannot be used.
        SandboxUnavailable: No local sandbox to compare with.
        BenchError: A round trip gave a wrong answer.
    """
    if rounds < 1:
        raise BenchError("rounds must be at least 1")
    gateway = GatewayProvider(url.removeprefix("gateway:"), token)
    await gateway.check()
    local = KernelFactory()
    await local.check()
    remote = _summary(await _round_trips(gateway, rounds))
    here = _summary(await _round_trips(local, rounds))
    out: dict[str, Any] = {
        "rounds": rounds, "gateway": remote, "local": here,
        "ratio_p50": remote["p50_ms"] / here["p50_ms"], "ratio_p90": remote["p90_ms"] / here["p90_ms"],
    }
    print(f"kernel round trip (warm 1+1, {rounds} rounds)")
    for name, row in (("local", here), ("gateway", remote)):
        print(f"  {name:<8} p50 {row['p50_ms']:7.2f} ms   p90 {row['p90_ms']:7.2f} ms")
    print(f"  gateway/local ratio: p50 {out['ratio_p50']:.2f}x   p90 {out['ratio_p90']:.2f}x")
    return out
