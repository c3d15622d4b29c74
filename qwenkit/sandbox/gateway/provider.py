"""`GatewayProvider`: kernels from a Jupyter Kernel Gateway / Enterprise Gateway instead of this machine.

Isolation is the gateway host's business: its kernelspec decides how kernels run there. By default
the provider insists on qwenkit's sandboxed kernelspec (``qwenkit-sandbox``, see
`qwenkit.sandbox.kernelspec`); a plain kernelspec gives no sandbox and must be allowed explicitly.
"""

from __future__ import annotations

import asyncio
import logging

from qwenkit.sandbox.gateway.endpoint import GatewayEndpoint
from qwenkit.sandbox.gateway.kernel import GatewayKernel
from qwenkit.sandbox.gateway.report import GatewayReport, probe_gateway, require_usable
from qwenkit.sandbox.isolation.bubblewrap import WORKDIR
from qwenkit.sandbox.kernelspec import KERNEL_NAME
from qwenkit.sandbox.provider import Kernel

log = logging.getLogger("qwenkit.sandbox")


class GatewayProvider:
    """Starts kernels on a gateway; the gateway counterpart of the local `KernelFactory`.

    Example::

        provider = GatewayProvider("https://gw.example:8888", token="...")
        async with KernelPool(size=2, factory=provider) as pool:
            ...

    Args:
        url: The gateway's base URL (``http(s)://host:port[/base_url]``); ``https`` uses TLS.
        token: Auth token, sent as ``Authorization: token ...`` (default: ``QWENKIT_GATEWAY_TOKEN``).
        kernel_name: Kernelspec to start (default: ``qwenkit-sandbox``).
        allow_unsandboxed: Accept a kernelspec that is not qwenkit's sandbox (code then runs on the
            gateway host with whatever isolation that kernelspec has: often none).
        startup_timeout: Seconds a kernel may take to start and answer.
        request_timeout: Seconds for each other REST call (interrupt, delete).
        verify: TLS certificate check: ``True``, ``False`` or a CA bundle path.

    Raises:
        ConfigError: ``url`` is not a usable URL.
    """

    name = "gateway"

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        kernel_name: str = KERNEL_NAME,
        allow_unsandboxed: bool = False,
        startup_timeout: float = 60.0,
        request_timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        self.endpoint = GatewayEndpoint.make(url, token, verify)
        self.kernel_name = kernel_name
        self.allow_unsandboxed = allow_unsandboxed
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self._report: GatewayReport | None = None

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def sandboxed(self) -> bool | None:
        """Whether the kernelspec is qwenkit's sandbox (``None`` until `check` ran)."""
        return None if self._report is None else self._report.sandboxed

    async def check(self) -> GatewayReport:
        """Check that the gateway answers, accepts the token and has a usable kernelspec.

        Raises:
            ConfigError: One line saying what is wrong (no answer, 401/403, not a gateway, no such
                kernelspec, or a plain kernelspec without ``allow_unsandboxed``).
        """
        report = await asyncio.to_thread(probe_gateway, self.endpoint, self.kernel_name,
                                         timeout=min(self.request_timeout, 10.0))
        require_usable(report, allow_unsandboxed=self.allow_unsandboxed)
        if not report.sandboxed:
            log.warning("kernel gateway %s: kernelspec %r is not qwenkit's sandbox; code runs there unsandboxed",
                        self.url, self.kernel_name)
        self._report = report
        return report

    async def acquire_kernel(self) -> GatewayKernel:
        """Start a kernel on the gateway and return it once it answers.

        Raises:
            KernelStartError: The gateway does not answer or could not start the kernel.
            ConfigError: The gateway refused the token.
        """
        workdir = WORKDIR if self._report is None or self._report.sandboxed else ""
        return await GatewayKernel.start(
            self.endpoint, self.kernel_name, workdir=workdir, startup_timeout=self.startup_timeout,
            request_timeout=self.request_timeout,
        )

    async def release_kernel(self, kernel: Kernel) -> None:
        """Delete a kernel that is no longer needed."""
        await kernel.close()
