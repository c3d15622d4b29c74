"""Kernels on a Jupyter Kernel Gateway / Enterprise Gateway (REST lifecycle, WebSocket messages).

- `GatewayProvider`: the kernel provider (`KernelPool(factory=GatewayProvider(url, token))`).
- `GatewayKernel`: one remote kernel.
- `gateway_report`: what ``qwenkit doctor --kernels URL`` prints.
- `gateway_round_trip`: the warm ``1+1`` benchmark against the local provider.
"""

from typing import TYPE_CHECKING, Any

from qwenkit.sandbox.gateway.endpoint import TOKEN_ENV, GatewayEndpoint
from qwenkit.sandbox.gateway.kernel import GatewayKernel
from qwenkit.sandbox.gateway.provider import GatewayProvider
from qwenkit.sandbox.gateway.report import GatewayReport, gateway_report

if TYPE_CHECKING:
    from qwenkit.sandbox.gateway.bench import gateway_round_trip


def __getattr__(name: str) -> Any:
    if name == "gateway_round_trip":  # the benchmark pulls in the local provider; load it on use
        from qwenkit.sandbox.gateway import bench

        return bench.gateway_round_trip
    raise AttributeError(name)


__all__ = [
    "TOKEN_ENV", "GatewayEndpoint", "GatewayKernel", "GatewayProvider", "GatewayReport", "gateway_report",
    "gateway_round_trip",
]
