"""Sandboxed, stateful Jupyter code execution for model-written code.

- `KernelSession`: notebook-like session (state kept between calls) returning `ExecutionResult`.
- `KernelPool`: pre-warmed isolated kernels; sessions made by the pool start instantly.
- Kernel providers (`KernelProvider`): local kernels (`KernelFactory`, the default) or kernels on a
  Jupyter Kernel Gateway / Enterprise Gateway (`qwenkit.sandbox.gateway.GatewayProvider`), picked by a
  ``kernels`` setting (`parse_kernels`, `make_provider`): ``"local"`` or ``"gateway:https://..."``.
- Isolation policies: `BubblewrapPolicy` (default) and `UnsandboxedPolicy` (explicit only).
- `doctor_report`: which policy this machine supports, and why (and which CPU share mechanism is active).
- `OutputsBudget`: a size budget, oldest files removed first, for the folder images are saved in.
- Closing: `KernelSession.close` / `KernelPool.aclose` (async); `kill_now` on either kills their kernels
  synchronously, without an event loop, for finalisers.
"""

from typing import TYPE_CHECKING, Any

from qwenkit.errors import KernelStartError, SandboxError, SandboxUnavailable, SessionClosed
from qwenkit.sandbox.choice import KernelsSetting, make_provider, parse_kernels
from qwenkit.sandbox.images import OutputsBudget
from qwenkit.sandbox.isolation import BubblewrapPolicy, IsolationPolicy, UnsandboxedPolicy, get_policy
from qwenkit.sandbox.kernel import KernelFactory, SandboxKernel
from qwenkit.sandbox.limits import ResourceLimits
from qwenkit.sandbox.pool import KernelPool
from qwenkit.sandbox.provider import Kernel, KernelProvider
from qwenkit.sandbox.result import ExecutionError, ExecutionResult
from qwenkit.sandbox.session import KernelSession, SessionConfig

if TYPE_CHECKING:
    from qwenkit.sandbox.doctor import DoctorReport, doctor_report


def __getattr__(name: str) -> Any:
    # The doctor is imported on use, so `python -m qwenkit.sandbox.doctor` runs it only once.
    if name in ("DoctorReport", "doctor_report"):
        from qwenkit.sandbox import doctor

        return getattr(doctor, name)
    raise AttributeError(name)


__all__ = [
    "BubblewrapPolicy", "DoctorReport", "ExecutionError", "ExecutionResult", "IsolationPolicy", "Kernel",
    "KernelFactory", "KernelPool", "KernelProvider", "KernelSession", "KernelStartError", "KernelsSetting",
    "OutputsBudget", "ResourceLimits", "SandboxError", "SandboxKernel", "SandboxUnavailable", "SessionClosed",
    "SessionConfig", "UnsandboxedPolicy", "doctor_report", "get_policy", "make_provider", "parse_kernels",
]
