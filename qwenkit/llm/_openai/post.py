"""A capped, deadline-bound JSON POST over aiohttp: the fast path of a non-streamed chat completion.

The ``openai`` SDK spends about 2 ms of CPU on each request (building it, validating the reply with
pydantic) and httpx2's pool looks at every pooled connection per request; at a few hundred requests a
second that is the whole of a client's core. `JsonPost` sends one prepared JSON body over a shared
``aiohttp`` session and returns the reply's bytes, with the guards of the SDK path (`CappedTransport`):

* a byte cap on every reply, error bodies included (a ``Content-Length`` over it is refused unread);
* identity encoding only (asked for, and a compressed reply is refused: a gzip bomb defeats a cap);
* the environment's proxy (``HTTP_PROXY``, ``NO_PROXY``, ...), looked up once;
* the deadline bounds everything (connecting, waiting, reading), and once the reply has started a
  silence of ``idle_timeout`` between two chunks ends it: a server dripping one byte a second is cut
  off at the deadline, one that stops sending at the idle timeout.

Failures are `PostError` kinds that `OpenAICompatible` maps to the messages and retry rules of the SDK's
errors; the deadline passing is the builtin `TimeoutError`; a reply refused for its size or encoding is
a `ModelError` (not retried, as on the SDK path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
import httpx2
from yarl import URL

from qwenkit.errors import ModelError
from qwenkit.llm._openai.transport import env_proxy

MAX_CONNECTIONS = 1000
"""Connections one `JsonPost` keeps open at most (the SDK path's pool allows as many)."""


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


class Stalled(PostError):
    """The reply had started and then nothing came for ``idle_timeout`` seconds (not retried)."""

    retryable: ClassVar[bool] = False


class StatusError(PostError):
    """The server answered an HTTP error status (400 and above).

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


def _abandon(held: list[aiohttp.ClientSession]) -> None:
    """Close, without a loop, sessions their owner dropped unclosed (at garbage collection or exit).

    aiohttp's own finalizers would do the same and then log "Unclosed client session" and "Unclosed
    connector"; a model dropped without `aclose` is common in scripts and is no error worth a log line.
    """
    for session in held:
        connector = session.connector
        session.detach()  # marks the session closed: no warning from it
        if connector is not None and not connector.closed:
            # The synchronous part of close(); a closed loop cannot schedule the transports' closing.
            with contextlib.suppress(Exception):
                connector._close()  # pyright: ignore[reportPrivateUsage]
    held.clear()


class JsonPost:
    """POSTs JSON bodies to one URL over a connection pool of its own, each reply capped and deadline-bound.

    The ``aiohttp`` session is made on first use, in the running event loop (a session is bound to one
    loop; used from another loop, a new one is made).

    Args:
        url: The endpoint (``.../v1/chat/completions``).
        headers: Headers sent with every request (``Authorization``).
        max_bytes: Most bytes read from one reply, error bodies included.
        connect_timeout: Seconds to open a connection (less when the deadline is nearer).
        idle_timeout: Longest silence between two chunks of a reply that has started.
        where: The server's URL as messages name it.
    """

    def __init__(self, url: str, headers: Mapping[str, str], *, max_bytes: int, connect_timeout: float,
                 idle_timeout: float, where: str) -> None:
        self.url = URL(url)
        self.where = where
        self.max_bytes = max_bytes
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.proxy = env_proxy(url)
        self._headers = {**headers, "Content-Type": "application/json", "Accept": "application/json",
                         # Asked for identity: a compressed body would make the byte cap meaningless.
                         "Accept-Encoding": "identity"}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held: list[aiohttp.ClientSession] = []
        weakref.finalize(self, _abandon, self._held)

    @property
    def usable(self) -> bool:
        """Whether aiohttp can reach the server: directly or through an HTTP(S) proxy, not a SOCKS one."""
        return self.proxy is None or URL(self.proxy).scheme in ("http", "https")

    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop:
            return session
        if session is not None:  # made in another (likely finished) loop: it cannot be used here
            self._held.remove(session)
            _abandon([session])
        ssl: Any = httpx2.create_ssl_context() if self.url.scheme == "https" else True  # the SDK path's trust
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0, ssl=ssl)
        session = aiohttp.ClientSession(
            connector=connector,
            # Only the socket connect is timed by aiohttp; waiting for a pooled connection and for the
            # reply is bounded by the caller's deadline.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            auto_decompress=False, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._session, self._loop = session, loop
        self._held.append(session)
        return session

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
            StatusError: An HTTP error status (retryable for 429 and 5xx).
            ModelError: The reply is larger than ``max_bytes`` or compressed.
        """
        session = self._session_now()
        loop = asyncio.get_running_loop()
        limit = asyncio.timeout_at(deadline)
        idle_end = deadline
        try:
            async with limit:
                try:
                    payload = aiohttp.BytesPayload(body, content_type="application/json")
                    response = await session.post(self.url, data=payload, headers=self._headers, proxy=self.proxy)
                except aiohttp.ConnectionTimeoutError:
                    raise ConnectionFailed("no connection in time", timed_out=True) from None
                except (aiohttp.ClientError, ConnectionError) as err:
                    raise ConnectionFailed(f"{type(err).__name__}: {err}") from err
                async with response:
                    self._check_encoding(response)
                    length = response.content_length
                    if length is not None and length > self.max_bytes:
                        raise self._too_large()
                    parts: list[bytes] = []
                    seen = 0
                    content = response.content
                    try:
                        while True:
                            # What has arrived is taken without a wait (a small reply usually comes with
                            # its headers), so no timer is armed for it.
                            part = content.read_nowait()
                            if not part:
                                if content.at_eof():
                                    break
                                # A non-streamed reply is sent whole once generated: any silence once it
                                # has started is a stall (the deadline still bounds a steady trickle).
                                idle_end = min(deadline, loop.time() + self.idle_timeout)
                                limit.reschedule(idle_end)
                                part = await content.readany()
                                limit.reschedule(deadline)
                                idle_end = deadline
                                if not part:
                                    break
                            seen += len(part)
                            if seen > self.max_bytes:
                                raise self._too_large()
                            parts.append(part)
                    except (aiohttp.ClientError, ConnectionError) as err:
                        raise BrokenReply(f"{type(err).__name__}: {err}") from err
                    data = parts[0] if len(parts) == 1 else b"".join(parts)
                    if response.status >= 400:
                        raise StatusError(response.status, response.headers, server_message(response.status, data))
                    return data, response.headers.get("Content-Type", "")
        except TimeoutError:
            if limit.expired() and idle_end < deadline and loop.time() < deadline:
                raise Stalled(f"nothing for {self.idle_timeout:g} s") from None
            raise

    def _check_encoding(self, response: aiohttp.ClientResponse) -> None:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ModelError(f"the model server at {self.where} sent a compressed reply "
                             f"(content-encoding: {encoding[:40]}) though none was asked for")

    def _too_large(self) -> ModelError:
        return ModelError(f"the model server at {self.where} sent a reply larger than {self.max_bytes} "
                          "bytes; the rest was not read")

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        held, self._session = list(self._held), None
        self._held.clear()
        for session in held:
            try:
                await session.close()
            except RuntimeError:  # made in another event loop, now closed
                _abandon([session])
