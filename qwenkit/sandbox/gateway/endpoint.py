"""Where a gateway is and how to talk to it: URL checks, the auth header, and capped REST calls.

REST answers come from another machine and are untrusted: bodies are read up to a cap and parsed
defensively; every call has a timeout.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from qwenkit.errors import ConfigError

TOKEN_ENV = "QWENKIT_GATEWAY_TOKEN"
"""Environment variable read for the gateway token when none is passed."""

MAX_REST_BODY = 4 * 1024 * 1024
"""Largest REST answer read from a gateway (kernelspec lists with logos stay far below)."""


def check_gateway_url(url: str) -> str:
    """Validate a gateway base URL and return it without a trailing slash.

    Raises:
        ConfigError: Not an ``http://`` / ``https://`` URL with a host, or one with credentials, a
            query or a fragment.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a bad port
    except ValueError as err:
        raise ConfigError(f"bad kernel gateway URL {url!r}: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"bad kernel gateway URL {url!r}: expected http://host:port or https://host:port")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"bad kernel gateway URL {url!r}: give the token separately, not in the URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"bad kernel gateway URL {url!r}: a query or fragment is not allowed")
    del port
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class GatewayEndpoint:
    """A gateway's base URL, token and TLS settings.

    Attributes:
        url: Base URL (``http(s)://host:port[/base_url]``), no trailing slash.
        token: Sent as ``Authorization: token ...`` (``None``: no header).
        verify: TLS certificate check for ``https``: ``True`` (system CAs), ``False``, or a CA bundle path.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    verify: bool | str = True

    @classmethod
    def make(cls, url: str, token: str | None = None, verify: bool | str = True) -> GatewayEndpoint:
        """Check ``url``; take the token from `TOKEN_ENV` when ``token`` is ``None``."""
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        return cls(check_gateway_url(url), token, verify)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def http_url(self, path: str) -> str:
        return f"{self.url}{path}"

    def ws_url(self, path: str) -> str:
        scheme, rest = self.url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"

    def tls(self) -> bool | ssl.SSLContext:
        """``verify`` as httpx takes it (a CA bundle path becomes an SSL context)."""
        return ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify

    def client(self, timeout: float) -> httpx.AsyncClient:
        """A short-lived async client (lifecycle calls are rare; nothing is kept between them)."""
        return httpx.AsyncClient(headers=self.headers, timeout=timeout, verify=self.tls(), trust_env=False)

    def sync_client(self, timeout: float) -> httpx.Client:
        return httpx.Client(headers=self.headers, timeout=timeout, verify=self.tls(), trust_env=False)


@dataclass(frozen=True)
class RestAnswer:
    """A gateway's REST answer: status and the (capped) body parsed as JSON when it is JSON."""

    status: int
    body: Any = None
    too_big: bool = False

    def field(self, key: str) -> Any:
        return self.body.get(key) if isinstance(self.body, dict) else None


def _parse(status: int, chunks: list[bytes], too_big: bool) -> RestAnswer:
    raw = b"".join(chunks)
    try:
        body = json.loads(raw) if raw and not too_big else None
    except (ValueError, RecursionError):  # UnicodeDecodeError included; absurd nesting
        body = None
    return RestAnswer(status, body, too_big)


async def rest(endpoint: GatewayEndpoint, method: str, path: str, *, timeout: float,
               payload: dict[str, Any] | None = None) -> RestAnswer:
    """One REST call; the body is read up to `MAX_REST_BODY`.

    Raises:
        httpx.HTTPError: The gateway could not be reached (or timed out).
    """
    async with endpoint.client(timeout) as client, client.stream(
        method, endpoint.http_url(path), json=payload
    ) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_REST_BODY:
                return _parse(response.status_code, [], True)
            chunks.append(chunk)
        return _parse(response.status_code, chunks, False)


def rest_sync(endpoint: GatewayEndpoint, method: str, path: str, *, timeout: float) -> RestAnswer:
    """`rest` without an event loop (for `gateway_report` and finalisers)."""
    with endpoint.sync_client(timeout) as client, client.stream(method, endpoint.http_url(path)) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_REST_BODY:
                return _parse(response.status_code, [], True)
            chunks.append(chunk)
        return _parse(response.status_code, chunks, False)


def is_tls_error(err: BaseException) -> bool:
    """Whether a transport error was a TLS failure (an untrusted certificate, say)."""
    seen: BaseException | None = err
    for _ in range(10):  # the chain of causes is short; bound it anyway
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe_http_error(err: BaseException) -> str:
    """A short reason for a transport error (``connection refused``, ``timed out``, a TLS failure)."""
    if isinstance(err, httpx.TimeoutException):
        return "timed out"
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]
