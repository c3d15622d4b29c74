"""HTTP guards for `OpenAICompatible`: a byte cap on every reply, Retry-After, and checked settings.

The ``openai`` SDK reads a whole error body into memory before raising, and ``httpx2`` decompresses a
gzip body as it goes; a hostile server could flood memory through either. `CappedTransport` sits under
the SDK's HTTP client and ends any reply larger than the cap, so the cap holds on every path.
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx2

from qwenkit.errors import ConfigError, ModelError


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int, where: str) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._where = where

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for part in self._inner:
            seen += len(part)
            if seen > self._max_bytes:
                raise ModelError(f"the model server at {self._where} sent a reply larger than "
                                 f"{self._max_bytes} bytes; the rest was not read")
            yield part

    async def aclose(self) -> None:
        await self._inner.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """Wraps ``httpx2``'s own transport: each reply may be at most ``max_bytes`` long and uncompressed.

    Args:
        max_bytes: Most bytes read from one reply (headers aside).
        where: The server's URL, for messages.
    """

    def __init__(self, max_bytes: int, where: str) -> None:
        # The openai SDK's own pool limits (httpx2's defaults allow only 100 connections). A client given
        # a transport no longer reads the proxy variables itself, so the proxy is looked up here.
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        proxy = env_proxy(where)
        try:
            self._inner = httpx2.AsyncHTTPTransport(limits=limits, proxy=proxy)
        except (ImportError, ValueError, httpx2.InvalidURL) as err:
            shown = (proxy or "").rpartition("@")[2]  # never show a password from the proxy URL
            why = str(err) if isinstance(err, ImportError) else type(err).__name__
            raise ConfigError(f"the proxy {shown!r} set in the environment (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY) "
                              f"for {where} cannot be used: {why}") from None
        self._max_bytes = max_bytes
        self._where = where

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # Asked for identity below; a compressed body would make the byte cap meaningless (a gzip bomb).
        request.headers["accept-encoding"] = "identity"
        response = await self._inner.handle_async_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            await response.aclose()
            raise ModelError(f"the model server at {self._where} sent a compressed reply "
                             f"(content-encoding: {encoding[:40]}) though none was asked for")
        stream = response.stream
        if not isinstance(stream, httpx2.AsyncByteStream):  # an async transport always answers with one
            return response
        return httpx2.Response(response.status_code, headers=response.headers, request=request,
                               stream=_CappedStream(stream, self._max_bytes, self._where),
                               extensions=response.extensions)

    async def aclose(self) -> None:
        await self._inner.aclose()


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ...), unless ``NO_PROXY``
    exempts its host."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a server asked the client to wait (``Retry-After``: seconds or an HTTP date), if it did.

    ``retry-after-ms`` (OpenAI's own) is read first. Negative, unreadable or non-finite values give ``None``.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            return value if math.isfinite(value) and value >= 0 else None
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; a sloppy one without a zone is taken as GMT too
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_api_key(api_key: str) -> None:
    """Refuse a key an HTTP header cannot carry, saying what is wrong (never echoing the key).

    Raises:
        ConfigError: The key has a control character (often a newline read from a file) or a
            non-ASCII character.
    """
    for i, ch in enumerate(api_key):
        if ch in "\r\n":
            raise ConfigError(f"the API key has a line break at character {i + 1} of {len(api_key)}; "
                              "remove it (a key read from a file often ends with a newline)")
        if not " " <= ch <= "~":
            kind = "a control character" if ord(ch) < 128 else "a non-ASCII character"
            raise ConfigError(f"the API key has {kind} (U+{ord(ch):04X}) at character {i + 1} of "
                              f"{len(api_key)}; an API key can hold only printable ASCII")


def check_base_url(base_url: str) -> str:
    """Return ``base_url`` if it is a usable ``http(s)://host[:port]/...`` URL.

    Raises:
        ConfigError: Naming the URL and what is wrong with it.
    """
    shown = base_url if len(base_url) <= 200 else base_url[:200] + "..."
    try:
        parts = urlsplit(base_url)
        port = parts.port  # raises for a port outside 0..65535 or one that is not a number
        host = parts.hostname
        httpx2.URL(base_url)
    except (ValueError, httpx2.InvalidURL) as err:
        raise ConfigError(f"the model server URL {shown!r} is not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"the model server URL {shown!r} must start with http:// or https://")
    if not host:
        raise ConfigError(f"the model server URL {shown!r} has no host name")
    if port == 0:
        raise ConfigError(f"the model server URL {shown!r} has port 0, which no server can listen on")
    return base_url
