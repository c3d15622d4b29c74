"""Running code for the benchmark in sandboxed kernels: staging input files, figure hooks, fresh-kernel runs.

Model-written code never runs in the benchmark process: it runs in `qwenkit.sandbox` kernels, through the
``code_interpreter`` tool during the agent run and through `SandboxRunner` for the executable rate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

FIGURE_MARKER = "__QWENKIT_FIGURES__"
REPORT_CODE = "_qk_report()"

FIGURE_HOOKS = r"""
import json as _qk_json

def _qk_setup():
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.figure import Figure
    from matplotlib.patches import Wedge

    seen = {}

    def describe(fig):
        axes = []
        for ax in fig.get_axes():
            if ax.get_label() == "<colorbar>":
                continue
            kinds = set()
            if ax.lines:
                kinds.add("line")
            bars = [c for c in ax.containers if isinstance(c, BarContainer)]
            if bars:
                kinds.add("bar")
            if any(isinstance(p, Wedge) for p in ax.patches):
                kinds.add("pie")
            if any(isinstance(c, PathCollection) for c in ax.collections):
                kinds.add("scatter")
            if ax.images:
                kinds.add("image")
            axes.append({"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                         "kinds": sorted(kinds), "lines": len(ax.lines), "bars": sum(len(b) for b in bars),
                         "legend": ax.get_legend() is not None})
        sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
        return {"suptitle": sup, "axes": axes}

    def capture(*figs):
        for fig in figs or [plt.figure(n) for n in plt.get_fignums()]:
            if fig.get_axes():
                seen[id(fig)] = describe(fig)

    show = plt.show

    def show_wrapper(*args, **kwargs):
        capture()
        return show(*args, **kwargs)

    plt.show = show_wrapper
    savefig = Figure.savefig

    def savefig_wrapper(self, *args, **kwargs):
        capture(self)
        return savefig(self, *args, **kwargs)

    Figure.savefig = savefig_wrapper
    try:
        from matplotlib_inline import backend_inline
        callbacks = get_ipython().events.callbacks["post_execute"]
        for i, cb in enumerate(callbacks):
            if cb is backend_inline.flush_figures or getattr(cb, "__name__", "") == "flush_figures":
                def flush(cb=cb):
                    capture()
                    return cb()
                callbacks[i] = flush
                break
        else:
            get_ipython().events.register("post_execute", lambda: capture())
    except Exception:
        pass

    def report():
        capture()
        print("__QWENKIT_FIGURES__" + _qk_json.dumps(list(seen.values())))

    return report

_qk_report = _qk_setup()
del _qk_setup
"""
"""Code run in the kernel before the model's: wraps ``plt.show``, ``Figure.savefig`` and the inline
backend's flush so every figure is described (axes, titles, chart kinds) before it is closed;
`REPORT_CODE` prints the descriptions after `FIGURE_MARKER`."""


def staging_code(files: Mapping[str, bytes]) -> str:
    """Code that writes ``files`` (name to bytes) into the kernel's working directory."""
    payload = {name: base64.b64encode(data).decode() for name, data in files.items()}
    return ("def _qk_stage(files):\n"
            "    import base64, pathlib\n"
            "    for name, data in files.items():\n"
            "        pathlib.Path(name).write_bytes(base64.b64decode(data))\n"
            f"_qk_stage({payload!r})\n"
            "del _qk_stage\n")


def parse_figures(stdout: str) -> list[dict[str, Any]]:
    """The figure descriptions printed by `REPORT_CODE` (empty if absent)."""
    at = stdout.rfind(FIGURE_MARKER)
    if at < 0:
        return []
    try:
        value = json.loads(stdout[at + len(FIGURE_MARKER):].strip().splitlines()[0])
    except (json.JSONDecodeError, IndexError):
        return []
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class ExecOutcome:
    """The result of running one piece of code in a fresh kernel.

    Attributes:
        ok: It ran to the end without raising or timing out.
        error: ``Name: message`` when not ok.
        images: Number of images it displayed.
        figures: Descriptions of the figures it drew.
    """

    ok: bool
    error: str | None = None
    images: int = 0
    figures: list[dict[str, Any]] = field(default_factory=list)


class CodeRunner(Protocol):
    """Runs code in a fresh, isolated interpreter with some input files in its working directory."""

    async def run(self, code: str, files: Mapping[str, bytes], timeout: float) -> ExecOutcome:
        """Run ``code`` once; never in the calling process."""
        ...

    async def aclose(self) -> None:
        """Release kernels."""
        ...


def _error_text(result: Any) -> str | None:
    if result.ok:
        return None
    if result.error is not None:
        return f"{result.error.name}: {result.error.value}"
    if result.timed_out:
        return f"Timeout: the code ran past {result.timeout_s:g} s"
    return "the kernel died" if result.kernel_died else "the kernel was restarted"


class SandboxRunner:
    """`CodeRunner` over `qwenkit.sandbox` kernels (bubblewrap by default), one fresh kernel per run.

    Args:
        pool_size: Warm kernels kept ready.
        policy: Isolation policy (``bubblewrap``; ``unsandboxed`` only for trusted code).
    """

    def __init__(self, pool_size: int = 2, policy: Any = None) -> None:
        self.pool_size = pool_size
        self.policy = policy
        self._pool: Any = None

    async def _get_pool(self) -> Any:
        if self._pool is None:
            from qwenkit.sandbox.pool import KernelPool

            pool = KernelPool(size=self.pool_size, policy=self.policy)
            await pool.start(wait=False)
            self._pool = pool
        return self._pool

    async def run(self, code: str, files: Mapping[str, bytes], timeout: float) -> ExecOutcome:
        """Stage ``files``, install the figure hooks, run ``code``, and report figures."""
        pool = await self._get_pool()
        session = pool.session()
        try:
            setup = await session.execute(staging_code(files) + FIGURE_HOOKS, timeout=60)
            if not setup.ok:
                raise RuntimeError(f"could not prepare the sandbox: {_error_text(setup)}")
            result = await session.execute(code, timeout=timeout)
            report = await session.execute(REPORT_CODE, timeout=30)
            return ExecOutcome(ok=result.ok, error=_error_text(result), images=len(result.images),
                               figures=parse_figures(report.stdout))
        finally:
            await session.close()

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
