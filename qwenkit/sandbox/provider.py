"""Where kernels run: the provider interface (`qwenkit.sandbox.choice` picks one from ``--kernels``).

Two providers implement `KernelProvider`:

- the local one, `qwenkit.sandbox.kernel.KernelFactory`: kernels on this machine under an isolation
  policy (bubblewrap by default);
- `qwenkit.sandbox.gateway.GatewayProvider`: kernels on a Jupyter Kernel Gateway / Enterprise Gateway,
  isolated by the gateway host's kernelspec (`qwenkit.sandbox.kernelspec`).

`KernelSession`, `KernelPool` and the ``code_interpreter`` tool take either and behave the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from qwenkit.sandbox.kernel import CellEnd


@runtime_checkable
class Kernel(Protocol):
    """One running kernel, handed to exactly one session.

    Attributes:
        workdir: The kernel's working directory as code inside sees it (``""`` when unknown).
        exit_code: Exit status once it is known to have exited (``None`` when unknown).
        reaps_strays: Whether the client should call `reap_strays` after each cell.
    """

    workdir: str

    @property
    def exit_code(self) -> int | None: ...

    @property
    def reaps_strays(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    @property
    def death_reason(self) -> str | None:
        """Why the kernel stopped, when the provider knows more than an exit code."""
        ...

    async def is_alive(self) -> bool: ...

    def send(self, code: str) -> str:
        """Send ``code`` for execution; return the request's message id."""
        ...

    async def wait(self, msg_id: str, deadline: float, feed: Callable[[str, dict[str, Any]], None]) -> CellEnd:
        """Feed the request's messages until idle, ``deadline`` (``time.monotonic()``) or death."""
        ...

    async def interrupt(self) -> None: ...

    def reap_strays(self) -> int: ...

    async def close(self) -> None: ...

    def kill_now(self) -> None: ...


class KernelProvider(Protocol):
    """Starts kernels and disposes of them: the source a `KernelPool` or `KernelSession` draws from.

    Attributes:
        name: ``"local"`` or ``"gateway"``.
    """

    name: str

    async def check(self) -> object:
        """Raise (`SandboxUnavailable`, `ConfigError`) when no kernel can be started."""
        ...

    async def acquire_kernel(self) -> Any:
        """Start a kernel and return it once it answers (a `Kernel`)."""
        ...

    async def release_kernel(self, kernel: Any) -> None:
        """Stop a kernel that is no longer needed."""
        ...
