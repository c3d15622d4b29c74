"""A capped, deadline-bound JSON POST: the fast path of a non-streamed chat completion.

The ``openai`` SDK spends about 2 ms of CPU on each request (building it, validating the reply with
pydantic) and httpx2's pool looks at every pooled connection per request; at a few hundred requests a
second that is the whole of a client's core. aiohttp, used here before, still spent about 0.2 ms. `JsonPost`
writes one prepared JSON body on a pooled keep-alive connection (`qwenkit.llm._openai.h1`: asyncio
protocols and the llhttp parser) and returns the reply's bytes, with the guards of the SDK path
(`CappedTransport`):

* a byte cap on every reply, error bodies included (a ``Content-Length`` over it is refused unread);
* identity encoding only (asked for, and a compressed reply is refused: a gzip bomb defeats a cap);
* the environment's proxy (``HTTP_PROXY``, ``NO_PROXY``, ...), looked up once (an ``https://`` URL
  through a proxy needs a CONNECT tunnel: `usable` is false and the SDK path serves it);
* the deadline bounds everything (connecting, waiting, reading), and once the reply has started a
  silence of ``idle_timeout`` between two chunks ends it: a server dripping one byte a second is cut
  off at the deadline, one that stops sending at the idle timeout.

Failures are `PostError` kinds that `OpenAICompatible` maps to the messages and retry rules of the SDK's
errors; the deadline passing is the builtin `TimeoutError`; a reply refused for its size or encoding is
a `ModelError` (not retried, as on the SDK path).
"""

from __future__ import annotations

import asyncio
import base64
import json
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import httpx2

from qwenkit import __version__
from qwenkit.errors import ModelError
from qwenkit.llm._openai import h1
from qwenkit.llm._openai.transport import env_proxy

MAX_CONNECTIONS = 1000
"""Connections one `JsonPost` keeps open at most (the SDK path's pool allows as many)."""

USER_AGENT = f"qwenkit/{__version__}"

RACE_WINDOW = 0.5
"""Seconds within which a reused connection closed without a reply counts as closed before the request
arrived (the server's keep-alive timeout met the request), so the request is sent again once."""

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class PostError(Exception):
    """A POST that failed; `retryable` says whether another attempt may succeed."""

    retryable: ClassVar[bool] = True


class ConnectionFailed(PostError):
    """No reply was started: the connection could not be made, or closed before the reply's headers.

    Attributes:
        why: What went wrong (the exception's type and message).
        timed_out: The connection was not made within the connect timeout.
    """

    def __init__(self, why: str, *, timed_out: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.timed_out = timed_out


class BrokenReply(PostError):
    """The connection broke after the reply's headers, before its body was whole."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class Redirected(PostError):
    """The server answered with a redirect (301, 302, 303, 307, 308 and a ``Location``): not followed here.

    Attributes:
        status: The HTTP status.
        location: Where it points.
    """

    retryable: ClassVar[bool] = False

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"HTTP {status}: redirected to {location[:200]}")
        self.status = status
        self.location = location


class Stalled(PostError):
    """The reply had started and then nothing came for ``idle_timeout`` seconds (not retried)."""

    retryable: ClassVar[bool] = False


class StatusError(PostError):
    """The server answered an HTTP error status (400 and above), or a 3xx that is not a usable redirect.

    Attributes:
        status: The HTTP status.
        headers: The reply's headers (case-insensitive), for ``Retry-After``.
        said: The server's own message (``{"error": {"message": ...}}``), else ``"Error code: N"``, as the
            SDK words it; not yet cleaned for display.
    """

    def __init__(self, status: int, headers: Mapping[str, str], said: str) -> None:
        super().__init__(f"HTTP {status}: {said[:200]}")
        self.status = status
        self.headers = headers
        self.said = said

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status == 429 or self.status >= 500


def server_message(status: int, body: bytes) -> str:
    """What an error reply says: its ``error.message`` (or top-level ``message``) if it has one."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        value: Any = json.loads(text)
    except (ValueError, RecursionError):
        return f"Error code: {status}"
    inner = value.get("error", value) if isinstance(value, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    return message if isinstance(message, str) else f"Error code: {status}"


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request as compact UTF-8 JSON, as the SDK writes it (no ``NaN``).

    A lone surrogate (no UTF-8 form) is written as its JSON escape instead of failing.

    Raises:
        ModelError: The request holds something JSON cannot carry (``NaN``, an object that is not data).
    """
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError, RecursionError) as err:
        raise ModelError(f"the request cannot be sent as JSON: {type(err).__name__}: {str(err)[:200]}") from None


def _abandon(pools: list[h1.Pool]) -> None:
    """Close, without a loop, the connections of pools their owner dropped unclosed (at garbage collection)."""
    for pool in pools:
        pool.close()
    pools.clear()


class JsonPost:
    """POSTs JSON bodies to one URL over a connection pool of its own, each reply capped and deadline-bound.

    The pool is made on first use, in the running event loop (connections belong to one loop; used from
    another loop, a new pool is made).

    Args:
        url: The endpoint (``.../v1/chat/completions``).
        headers: Headers sent with every request (``Authorization``); printable ASCII (checked by the caller).
        max_bytes: Most bytes read from one reply, error bodies included.
        connect_timeout: Seconds to open a connection (less when the deadline is nearer).
        idle_timeout: Longest silence between two chunks of a reply that has started.
        where: The server's URL as messages name it.
    """

    def __init__(self, url: str, headers: Mapping[str, str], *, max_bytes: int, connect_timeout: float,
                 idle_timeout: float, where: str) -> None:
        self.url = url
        self.where = where
        self.max_bytes = max_bytes
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.proxy = env_proxy(url)
        self._closed = False
        parsed = httpx2.URL(url)  # percent-encodes the path, IDNA-encodes the host, drops any fragment
        self.scheme = parsed.scheme
        host = parsed.raw_host.decode("ascii")
        authority = (f"[{host}]" if ":" in host else host) + (f":{parsed.port}" if parsed.port else "")
        target = parsed.raw_path.decode("ascii")
        sent = {"Host": authority, **headers,
                "Content-Type": "application/json", "Accept": "application/json",
                # Asked for identity: a compressed body would make the byte cap meaningless.
                "Accept-Encoding": "identity", "User-Agent": USER_AGENT}
        dest = (host, parsed.port or (443 if parsed.scheme == "https" else 80), parsed.scheme == "https")
        if self.proxy is not None:
            proxy = urlsplit(self.proxy)
            # A plain-HTTP proxy is sent the whole URL (absolute form), without the URL's own credentials.
            target = f"{parsed.scheme}://{authority}{target}"
            if proxy.username is not None:
                token = base64.b64encode(f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode())
                sent["Proxy-Authorization"] = f"Basic {token.decode()}"
            dest = (proxy.hostname or "", proxy.port or (443 if proxy.scheme == "https" else 80),
                    proxy.scheme == "https")
        self._head = "".join([f"POST {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in sent.items()),
                              "Content-Length: "]).encode("latin-1")
        self._origin = dest
        self._pool: h1.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held: list[h1.Pool] = []
        weakref.finalize(self, _abandon, self._held)

    @property
    def usable(self) -> bool:
        """Whether this path can reach the server: directly, or an ``http://`` URL through an HTTP(S) proxy.

        An ``https://`` URL through a proxy (a CONNECT tunnel) and SOCKS proxies are left to the SDK's client.
        """
        if self.scheme not in ("http", "https"):
            return False
        return self.proxy is None or (self.scheme == "http" and urlsplit(self.proxy).scheme in ("http", "https"))

    def _pool_now(self) -> h1.Pool:
        if self._closed:
            raise ModelError(f"the model client for {self.where} was closed (aclose) and cannot be used")
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is not None and self._loop is loop:
            return pool
        if pool is not None:  # made in another (likely finished) loop: its connections cannot be used here
            self._pool = None
            if pool in self._held:
                self._held.remove(pool)
            _abandon([pool])
        host, port, secure = self._origin
        tls = httpx2.create_ssl_context() if secure else None  # the SDK path's trust store
        pool = h1.Pool(host, port, tls, self.max_bytes, MAX_CONNECTIONS)
        self._pool, self._loop = pool, loop
        self._held.append(pool)
        return pool

    async def _connect(self, pool: h1.Pool, deadline: float, *, fresh: bool = False) -> tuple[h1.Connection, bool]:
        """A pooled connection, or a new one within the connect timeout (bounded by the deadline too)."""
        loop = asyncio.get_running_loop()
        # Past the deadline the caller's own limit ends the wait, as the deadline's TimeoutError.
        timeout = self.connect_timeout if loop.time() + self.connect_timeout < deadline else None
        try:
            return await pool.acquire(timeout, fresh=fresh)
        except TimeoutError:  # only the connect timeout's: the deadline's is a cancellation here
            raise ConnectionFailed("no connection in time", timed_out=True) from None
        except (OSError, ValueError) as err:  # ValueError: a host name that cannot be looked up as given
            raise ConnectionFailed(f"{type(err).__name__}: {err}") from err

    async def send(self, body: bytes, deadline: float) -> tuple[bytes, str]:
        """POST ``body`` (JSON) and return the reply's body and content type.

        Args:
            body: The encoded JSON request (`encode_body`).
            deadline: Event-loop time by which the whole reply must have been read.

        Raises:
            TimeoutError: The deadline passed.
            ConnectionFailed: No reply was started (retryable).
            BrokenReply: The connection broke mid-reply (retryable).
            Stalled: The reply stopped for ``idle_timeout`` (not retryable).
            StatusError: An HTTP error status (retryable for 429 and 5xx), or a redirect without a place.
            Redirected: A redirect (the caller may follow it another way).
            ModelError: The reply is larger than ``max_bytes`` or compressed.
        """
        pool = self._pool_now()
        loop = asyncio.get_running_loop()
        limit = asyncio.timeout_at(deadline)
        idle_end = deadline
        request = self._head + b"%d\r\n\r\n" % len(body) + body
        try:
            async with limit:
                conn, reused = await self._connect(pool, deadline)
                try:
                    conn.begin(request)
                    await conn.wait()
                    if (conn.failure == "closed" and reused and not conn.started and conn.lost
                            and conn.lost_at - conn.sent_at < RACE_WINDOW):
                        # A kept-alive connection the server closed as it was reused (its keep-alive
                        # timeout): closed at once, without a byte of reply, the request was not worked
                        # on, so it is sent once more, on a new connection.
                        conn, _ = await self._connect(pool, deadline, fresh=True)
                        conn.begin(request)
                        await conn.wait()
                    while not conn.complete and conn.failure is None:
                        # Once the reply has started, a silence is a stall (a non-streamed reply is sent
                        # whole once generated); the deadline still bounds a steady trickle.
                        idle_end = min(deadline, loop.time() + self.idle_timeout)
                        limit.reschedule(idle_end)
                        await conn.wait()
                        limit.reschedule(deadline)
                        idle_end = deadline
                except BaseException:
                    conn.close()
                    raise
                if conn.failure is not None:
                    raise self._failed(conn)
                data, status, raw_headers, content_type = conn.body(), conn.status, conn.headers, conn.content_type
                pool.release(conn)
                if status >= 300:
                    headers = httpx2.Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers])
                    if status in REDIRECTS and "location" in headers:
                        raise Redirected(status, headers.get("location", ""))
                    raise StatusError(status, headers, server_message(status, data))
                return data, content_type
        except TimeoutError:
            if limit.expired() and idle_end < deadline and loop.time() < deadline:
                raise Stalled(f"nothing for {self.idle_timeout:g} s") from None
            raise

    def _failed(self, conn: h1.Connection) -> Exception:
        if conn.failure == "too_large":
            return self._too_large()
        if conn.failure == "head_too_large":
            return ModelError(f"the model server at {self.where} sent more than {h1.MAX_HEAD_BYTES} bytes of "
                              "reply headers; the rest was not read")
        if conn.failure == "encoding":
            return ModelError(f"the model server at {self.where} sent a compressed reply "
                              f"(content-encoding: {conn.why[:40]}) though none was asked for")
        if conn.failure == "broken":
            return BrokenReply(conn.why)
        return ConnectionFailed(conn.why)

    def _too_large(self) -> ModelError:
        return ModelError(f"the model server at {self.where} sent a reply larger than {self.max_bytes} "
                          "bytes; the rest was not read")

    async def aclose(self) -> None:
        """Close the connection pool, requests in flight included. Idempotent; no request may follow."""
        self._closed = True
        self._pool = None
        _abandon(self._held)
        await asyncio.sleep(0)  # the transports' closing runs now, not after the caller's loop ends
