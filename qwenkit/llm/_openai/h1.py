"""HTTP/1.1 keep-alive connections on asyncio protocols, replies parsed by httptools (llhttp).

The connection layer under `JsonPost`. aiohttp spends about 0.2 ms of CPU on each request (its request and
response objects, a writer task per request, header multidicts); at C/L = 1280 requests a second that
alone keeps a runner below 0.9 of the bound. One request is here one ``transport.write`` of a prepared
head and body, and the reply is read by llhttp (the parser of Node.js, through ``httptools``, as uvicorn
uses it) inside ``data_received``: a small reply that arrives in one segment wakes the waiting request once.

A `Connection` carries one request at a time and records what the reply did (`Connection.failure`) rather
than raising from the parser's callbacks; `JsonPost` turns that into its errors. `Pool` keeps the idle
connections of one origin (or proxy) and opens new ones up to a limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from typing import Any

import httptools


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; `begin` sends a request, the parser's callbacks record the reply.

    Args:
        max_bytes: Most body bytes kept from one reply; past it the connection is closed
            (`failure` ``"too_large"``).
        pool: The pool told when the connection is lost.
    """

    def __init__(self, max_bytes: int, pool: Pool) -> None:
        self.max_bytes = max_bytes
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.busy = False
        self.waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.started = False  # a byte of the reply has arrived
        self.parts: list[bytes] = []
        self.seen = 0
        self.length: int | None = None
        self.chunked = False
        self.failure: str | None = None
        self.why = ""

    # --------------------------------------------------------------------------- for JsonPost

    @property
    def usable(self) -> bool:
        """Open, idle and in a clean state: a next request may be sent on it."""
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def begin(self, data: bytes) -> None:
        """Send one request (head and body, already encoded); the reply is recorded from here on."""
        assert self.transport is not None
        self._reset()
        self.busy = True
        self.transport.write(data)

    async def wait(self) -> None:
        """Until the reply makes progress (bytes, its end, a failure or the connection's loss)."""
        if self.complete or self.failure is not None:
            return
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def header(self, name: bytes) -> str | None:
        """The reply's header ``name`` (lower case), the first if repeated."""
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def body(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)

    def finish(self) -> bool:
        """After a whole reply: whether the connection may carry another request (else it is closed)."""
        self.busy = False
        again = self.usable and self.failure is None and self.keep_alive
        if not again:
            self.close()
        return again

    def close(self) -> None:
        """Close at once (abort): unsent bytes and an unread reply are dropped."""
        self.busy = False
        if self.transport is not None and not self.lost:
            # With its event loop closed, abort cannot schedule the close: the socket closes when freed.
            with contextlib.suppress(RuntimeError):
                self.transport.abort()

    # ------------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete or self.failure is not None:
            # Bytes nobody asked for (while idle, or after the whole reply): the connection is no longer
            # in a known state, so it carries no further request.
            self.keep_alive = False
            if not self.busy:
                self.close()
            return
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("not_http", "the server switched protocols")
        except httptools.HttpParserError as err:
            self._fail("not_http", f"unreadable HTTP reply ({err})")
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.busy and not self.complete and self.failure is None:
            if self.headers_done and self.length is None and not self.chunked:
                self.complete = True  # a body delimited by the connection's end (HTTP/1.0 style)
            else:
                why = f"{type(exc).__name__}: {exc}" if exc is not None else "the server closed the connection"
                self._fail("broken" if self.headers_done else "closed", why)
        self._wake()
        self.pool.lost(self)

    # ------------------------------------------------------------------------- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:  # a second reply in the same bytes: not asked for
            self.keep_alive = False
            return
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:
            return  # an interim reply (100 Continue): the real one follows
        self.headers_done = True
        for name, value in self.headers:
            key = name.lower()
            if key == b"content-length":
                try:
                    self.length = int(value)
                except ValueError:
                    self.length = None
            elif key == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                self._fail("encoding", value.decode("latin-1").strip())
        if self.failure is None and self.length is not None and self.length > self.max_bytes:
            self._fail("too_large", "")

    def on_body(self, body: bytes) -> None:
        if self.failure is not None or self.complete:
            return
        self.seen += len(body)
        if self.seen > self.max_bytes:
            self.parts.clear()
            self._fail("too_large", "")
            return
        self.parts.append(body)

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of an interim reply
            self.headers.clear()
            return
        if self.failure is None and not self.complete:
            self.complete = True
            # Asked here: once this callback returns, llhttp resets the message's flags.
            self.keep_alive = self.parser.should_keep_alive()

    # ------------------------------------------------------------------------------ internals

    def _fail(self, kind: str, why: str) -> None:
        """Record the first failure and stop reading: the rest of this reply is not wanted.

        After a whole reply (unreadable bytes following it) the reply stands; the connection only closes.
        """
        if self.failure is None and not self.complete:
            self.failure, self.why = kind, why
        self.close()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Pool:
    """The connections to one host and port: idle ones reused newest first, at most ``limit`` open.

    Args:
        host: Host to connect to (the proxy's, with a proxy).
        port: Its port.
        tls: The TLS context, or ``None`` for plain TCP.
        max_bytes: Passed to each `Connection`.
        limit: Most connections open (and opening) at once; further requests wait for one.
    """

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, max_bytes: int, limit: int) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.max_bytes = max_bytes
        self.limit = limit
        self.idle: list[Connection] = []
        self.open: set[Connection] = set()
        self.opening = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> tuple[Connection, bool]:
        """A connection (an idle one if any) and whether it was reused.

        The caller bounds the wait (connecting, or waiting for a free slot) with its own timeout.

        Raises:
            OSError: The connection could not be made (refused, unreachable, TLS failure).
        """
        while self.idle:
            conn = self.idle.pop()
            if conn.usable:
                return conn, True
            conn.close()
        while len(self.open) + self.opening >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # it was woken as it was cancelled: the turn passes to the next
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            while self.idle:
                conn = self.idle.pop()
                if conn.usable:
                    return conn, True
                conn.close()
        self.opening += 1
        try:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(
                lambda: Connection(self.max_bytes, self), self.host, self.port, ssl=self.tls,
                server_hostname=self.host if self.tls is not None else None)
        finally:
            self.opening -= 1
            self._wake_one()
        self.open.add(conn)
        return conn, False

    def release(self, conn: Connection) -> None:
        """Take back a connection after its request: kept for the next one if it can carry it."""
        if conn.finish():
            self.idle.append(conn)
            self._wake_one()

    def lost(self, conn: Connection) -> None:
        """A connection ended (closed by either side)."""
        self.open.discard(conn)
        self._wake_one()

    def close(self) -> None:
        """Close every connection, idle or busy."""
        for conn in list(self.open):
            conn.close()
        self.idle.clear()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
