"""Is this a usable kernel gateway? Reachability, auth, and whether its kernelspec is qwenkit's sandbox.

`probe_gateway` answers with a `GatewayReport`; `gateway_report` is the same for ``qwenkit doctor
--kernels URL`` (plain text lines to print), and `GatewayProvider.check` turns a failed report into
one `ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from qwenkit.errors import ConfigError
from qwenkit.sandbox.gateway.endpoint import (
    TOKEN_ENV,
    GatewayEndpoint,
    describe_http_error,
    is_tls_error,
    rest_sync,
)
from qwenkit.sandbox.kernelspec import KERNEL_NAME, is_sandboxed_spec


@dataclass(frozen=True)
class GatewayReport:
    """What a gateway said about itself.

    Attributes:
        url: The gateway's base URL.
        answers: An HTTP server answered at all.
        auth_ok: The token was accepted (or none was needed).
        is_gateway: ``/api/kernelspecs`` answered like a Jupyter (kernel) gateway.
        kernel_name: The kernelspec qwenkit would use (``None`` when there is none).
        sandboxed: That kernelspec is qwenkit's bubblewrap one (``False``: a plain spec, no sandbox).
        specs: Names of every kernelspec the gateway offers.
        error: Why the gateway cannot be used, in one line (``None`` when it can).
        lines: The report as plain text lines.
    """

    url: str
    answers: bool
    auth_ok: bool
    is_gateway: bool
    kernel_name: str | None
    sandboxed: bool
    specs: tuple[str, ...]
    error: str | None
    lines: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """The gateway answers, accepts the token and has the kernelspec qwenkit would use."""
        return self.error is None


def probe_gateway(endpoint: GatewayEndpoint, kernel_name: str | None = None, *, timeout: float = 10.0) -> GatewayReport:
    """Ask a gateway for its kernelspecs (one ``GET /api/kernelspecs``) and judge the answer.

    Args:
        endpoint: The gateway.
        kernel_name: The kernelspec to judge (default: ``qwenkit-sandbox`` when the gateway has it,
            else the gateway's default).
        timeout: Seconds for the request.
    """
    url = endpoint.url

    def report(error: str | None, lines: list[str], **found: object) -> GatewayReport:
        values: dict[str, object] = {
            "answers": False, "auth_ok": False, "is_gateway": False, "kernel_name": None, "sandboxed": False,
            "specs": (),
        }
        values.update(found)
        return GatewayReport(url=url, error=error, lines=tuple(lines), **values)  # type: ignore[arg-type]

    try:
        answer = rest_sync(endpoint, "GET", "/api/kernelspecs", timeout=timeout)
    except httpx.HTTPError as err:
        error = (
            f"the TLS connection to the kernel gateway at {url} failed ({describe_http_error(err)})"
            if is_tls_error(err) else f"the kernel gateway at {url} does not answer ({describe_http_error(err)})"
        )
        return report(error, [f"gateway: {error}"])
    lines = [f"gateway: {url} answers (HTTP {answer.status})"]
    if answer.status in (401, 403):
        error = (
            f"the kernel gateway at {url} requires a token and none was given (set {TOKEN_ENV})"
            if endpoint.token is None
            else f"the kernel gateway at {url} rejected the token (HTTP {answer.status})"
        )
        return report(error, [*lines, f"auth: {error}"], answers=True)
    specs = answer.field("kernelspecs")
    if answer.status != 200 or not isinstance(specs, dict):
        what = "a reply too big to be one" if answer.too_big else f"HTTP {answer.status} for GET /api/kernelspecs"
        error = f"{url} is not a Jupyter kernel gateway ({what})"
        return report(error, [*lines, f"gateway: {error}"], answers=True, auth_ok=True)
    names = tuple(sorted(str(name) for name in specs))
    lines.append("auth: token accepted" if endpoint.token else "auth: no token needed")
    default = answer.field("default")
    name = kernel_name or (KERNEL_NAME if KERNEL_NAME in specs else default if isinstance(default, str) else None)
    found: dict[str, object] = {"answers": True, "auth_ok": True, "is_gateway": True, "specs": names}
    if name is None or name not in specs:
        error = (
            f"the kernel gateway at {url} has no kernelspec {name or KERNEL_NAME!r} (it has: "
            f"{', '.join(names) or 'none'}); install qwenkit's on the gateway host with "
            "`python -m qwenkit.sandbox.kernelspec install`"
        )
        return report(error, [*lines, f"kernelspec: {error}"], **found)
    entry = specs[name]
    sandboxed = is_sandboxed_spec(entry.get("spec") if isinstance(entry, dict) else None)
    if sandboxed:
        lines.append(f"kernelspec: {name!r} is qwenkit's bubblewrap sandbox")
    else:
        lines.append(
            f"kernelspec: {name!r} is a plain kernelspec: code runs on the gateway host with NO sandbox "
            "(install qwenkit's with `python -m qwenkit.sandbox.kernelspec install` there)"
        )
    return report(None, lines, kernel_name=name, sandboxed=sandboxed, **found)


def gateway_report(url: str, token: str | None = None, kernel_name: str | None = None,
                   *, timeout: float = 10.0, verify: bool | str = True) -> GatewayReport:
    """For ``qwenkit doctor --kernels URL``: does the gateway answer, does auth work, is its kernelspec sandboxed.

    Print ``report.lines``; ``report.ok`` is false when the gateway cannot be used (``report.error``
    says why in one line). A gateway whose kernelspec is plain is usable but ``report.sandboxed`` is
    false: say so loudly.

    Args:
        url: The gateway's base URL (``http(s)://host:port``), or ``gateway:URL`` as ``--kernels`` takes it.
        token: Auth token (default: the ``QWENKIT_GATEWAY_TOKEN`` environment variable).
        kernel_name: The kernelspec to judge (default: ``qwenkit-sandbox``, else the gateway's default).
        timeout: Seconds for the request.
        verify: TLS certificate check for ``https``: ``True`` (system CAs), ``False``, or a CA bundle path.

    Raises:
        ConfigError: ``url`` is not a usable URL.
    """
    endpoint = GatewayEndpoint.make(url.removeprefix("gateway:"), token, verify)
    return probe_gateway(endpoint, kernel_name, timeout=timeout)


def require_usable(report: GatewayReport, *, allow_unsandboxed: bool) -> None:
    """Raise one `ConfigError` when a gateway cannot be used (or only without a sandbox, not allowed)."""
    if report.error is not None:
        raise ConfigError(report.error)
    if not report.sandboxed and not allow_unsandboxed:
        raise ConfigError(
            f"the kernel gateway at {report.url} would run code with no sandbox: kernelspec "
            f"{report.kernel_name!r} is a plain one; install qwenkit's on the gateway host with "
            "`python -m qwenkit.sandbox.kernelspec install`, or allow unsandboxed kernels explicitly"
        )
