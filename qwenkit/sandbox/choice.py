"""The ``--kernels`` setting: ``local`` or ``gateway:URL``, parsed, and the kernel provider it names.

Kept apart from the provider interface (`qwenkit.sandbox.provider`), which the providers themselves import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from qwenkit.errors import ConfigError
from qwenkit.sandbox.provider import KernelProvider


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
