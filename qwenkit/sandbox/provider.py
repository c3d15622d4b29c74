"""Where kernels run: the provider interface, and the ``--kernels`` setting that picks one.

Two providers implement `KernelProvider`:

- the local one, `qwenkit.sandbox.kernel.KernelFactory`: kernels on this machine under an isolation
  policy (bubblewrap by default);
- `qwenkit.sandbox.gateway.GatewayProvider`: kernels on a Jupyter Kernel Gateway / Enterprise Gateway,
  isolated by the gateway host's kernelspec (`qwenkit.sandbox.kernelspec`).

`KernelSession`, `KernelPool` and the ``code_interpreter`` tool take either and behave the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from qwenkit.errors import ConfigError
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


@dataclass(frozen=True)
class KernelsSetting:
    """A parsed ``--kernels`` value.

    Attributes:
        kind: ``"local"`` or ``"gateway"``.
        url: The gateway's base URL (gateway only).
    """

    kind: Literal["local", "gateway"]
    url: str | None = None

    def __str__(self) -> str:
        return "local" if self.kind == "local" else f"gateway:{self.url}"


def parse_kernels(value: str) -> KernelsSetting:
    """Parse ``--kernels VALUE``: ``local`` or ``gateway:http(s)://host:port[/base_url]``.

    Raises:
        ConfigError: One line saying what is wrong with ``value``.
    """
    from qwenkit.sandbox.gateway.endpoint import check_gateway_url

    text = value.strip()
    if text == "local":
        return KernelsSetting("local")
    if text.startswith("gateway:"):
        return KernelsSetting("gateway", check_gateway_url(text.removeprefix("gateway:")))
    raise ConfigError(f"kernels must be 'local' or 'gateway:http(s)://host:port', not {value!r}")


def make_provider(
    kernels: str | KernelsSetting | KernelProvider = "local",
    *,
    token: str | None = None,
    policy: Any = None,
    limits: Any = None,
    allow_unsandboxed: bool = False,
) -> KernelProvider:
    """The provider a ``kernels`` setting names.

    Args:
        kernels: ``"local"``, ``"gateway:URL"``, a parsed setting, or a ready provider (returned as is).
        token: Gateway token (default: ``QWENKIT_GATEWAY_TOKEN``).
        policy: Isolation policy of local kernels (`KernelFactory`); not allowed with a gateway.
        limits: Resource limits of local kernels; not allowed with a gateway.
        allow_unsandboxed: Accept a gateway kernelspec that is not qwenkit's sandbox.

    Raises:
        ConfigError: A bad setting, or local-only options given for a gateway.
    """
    if not isinstance(kernels, str | KernelsSetting):
        return kernels
    setting = parse_kernels(kernels) if isinstance(kernels, str) else kernels
    if setting.kind == "local":
        from qwenkit.sandbox.kernel import KernelFactory

        return KernelFactory(policy, limits)
    if policy is not None or limits is not None:
        raise ConfigError(
            "an isolation policy and resource limits apply to local kernels only; a gateway's kernels get "
            "theirs from its kernelspec"
        )
    from qwenkit.sandbox.gateway.provider import GatewayProvider

    assert setting.url is not None
    return GatewayProvider(setting.url, token, allow_unsandboxed=allow_unsandboxed)
