"""`doctor_report`: which isolation policy this machine supports for the code interpreter, and why.

``qwenkit doctor`` prints `DoctorReport.to_text`; ``python -m qwenkit.sandbox.doctor`` does the same.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata

from qwenkit.sandbox.cpu import detect_cpu_control
from qwenkit.sandbox.isolation.base import Check, PolicyCheck
from qwenkit.sandbox.isolation.bubblewrap import BubblewrapPolicy


@dataclass(frozen=True)
class DoctorReport:
    """The sandbox's health on this machine.

    Attributes:
        policy: ``"bubblewrap"`` when kernels can be isolated here, else ``"unsandboxed"`` (which the
            code interpreter uses only when asked for explicitly).
        bubblewrap: The checks of the bubblewrap policy.
        environment: Kernel packages, the CPU share mechanism, fonts, and the optional end-to-end probe.
    """

    policy: str
    bubblewrap: PolicyCheck
    environment: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when sandboxed kernels work here and nothing else failed."""
        return self.policy == "bubblewrap" and all(c.ok for c in self.environment)

    def to_text(self) -> str:
        """Human-readable report, one check per line."""
        if self.policy == "bubblewrap":
            head = "code interpreter sandbox: bubblewrap (kernels are isolated)"
        else:
            head = (
                "code interpreter sandbox: NOT available; only policy='unsandboxed' can run here, and only "
                f"when chosen explicitly ({self.bubblewrap.reason()})"
            )
        lines = [head]
        for check in (*self.bubblewrap.checks, *self.environment):
            lines.append(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        return "\n".join(lines)

    def to_json(self) -> str:
        """The report as JSON (for scripts)."""
        return json.dumps(
            {"policy": self.policy, "ok": self.ok,
             "checks": [asdict(c) for c in (*self.bubblewrap.checks, *self.environment)]},
            ensure_ascii=False, indent=2,
        )


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def _environment() -> list[Check]:
    versions = {d: _version(d) for d in ("ipykernel", "jupyter_client", "matplotlib")}
    missing = [d for d, v in versions.items() if v == "missing"]
    checks = [Check(
        "kernel packages", not missing,
        f"python {sys.version.split()[0]}, " + ", ".join(f"{d} {v}" for d, v in versions.items()),
    )]
    cpu = detect_cpu_control()
    # Both mechanisms bound a kernel's CPU use, so either is a pass; the line says which one is active.
    checks.append(Check("cpu share", True, f"{cpu.mode}: {cpu.detail}"))
    if versions["matplotlib"] != "missing":
        try:
            from qwenkit.sandbox.fonts import cjk_fonts, matplotlib_seed

            fonts = cjk_fonts(matplotlib_seed())
            checks.append(Check(
                "CJK font", bool(fonts),
                ", ".join(fonts) if fonts else "none found; Chinese plot labels will show boxes "
                "(install the Debian package fonts-wqy-microhei)",
            ))
        except Exception as err:  # a broken font set-up is a finding, not a crash
            checks.append(Check("CJK font", False, f"could not prepare matplotlib: {err}"))
    return checks


async def _probe() -> Check:
    from qwenkit.sandbox.session import KernelSession

    t0 = time.perf_counter()
    try:
        async with KernelSession() as session:
            started = time.perf_counter() - t0
            result = await session.execute("1+1", timeout=30)
    except Exception as err:
        return Check("probe", False, f"{type(err).__name__}: {err}")
    ok = result.result == "2"
    return Check("probe", ok, f"isolated kernel started in {started:.2f} s; 1+1 -> {result.result!r}")


def doctor_report(*, probe: bool = False) -> DoctorReport:
    """Check this machine for the code interpreter's sandbox.

    Args:
        probe: Also start an isolated kernel and run ``1+1`` in it (about a second). Uses
            ``asyncio.run``, so do not call with ``probe=True`` from inside a running event loop.
    """
    check = BubblewrapPolicy().check()
    environment = _environment()
    if probe and check.ok:
        environment.append(asyncio.run(_probe()))
    return DoctorReport(
        policy="bubblewrap" if check.ok else "unsandboxed", bubblewrap=check, environment=tuple(environment),
    )


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit status 0 when sandboxed kernels work here, 1 otherwise."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m qwenkit.sandbox.doctor", description=__doc__)
    parser.add_argument("--probe", action="store_true", help="also start an isolated kernel and run 1+1")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    report = doctor_report(probe=args.probe)
    print(report.to_json() if args.json else report.to_text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
