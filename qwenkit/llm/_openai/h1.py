"""HTTP/1.1 keep-alive connections on asyncio protocols, replies parsed by httptools (llhttp).

The connection layer under `JsonPost`. aiohttp spends about 0.2 ms of CPU on each request (its request and
response objects, a writer task per request, header multidicts); at C/L = 1280 requests a second that
alone keeps a runner below 0.9 of the bound. One request is here one ``transport.write`` of a prepared
head and body, and the reply is read by llhttp (the parser of Node.js, through ``httptools``, as uvicorn
uses it) inside ``data_received``: a small reply that arrives in one segment wakes the waiting request once.

A `Connection` carries one request at a time and records what the reply did (`Connection.failure`) rather
than raising from the parser's callbacks; `JsonPost` turns that into its errors. `Pool` keeps the idle
connections of one origin (or proxy), opens new ones up to a limit and hands freed ones to waiting
requests in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
from typing import Any

import httptools

MAX_HEAD_BYTES = 64 * 1024
"""Most bytes of a reply's status line and headers (interim replies included) before it is refused."""

FRAMING_ALLOWANCE = 2
"""A reply's raw bytes (chunk framing and trailers included) may be this many times the body cap, plus the
head: chunked framing costs a few bytes per chunk, and trailers come after the body, past both other caps."""


class PoolClosed(OSError):
    """The pool was closed (`JsonPost.aclose`) before or while a request used it."""


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
        self.parser: Any = httptools.HttpResponseParser(self)
        self.lost = False
        self.busy = False
        self.sent_at = 0.0
        self.lost_at = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_type = ""
        self.received = 0  # raw bytes of this reply so far
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
    def open(self) -> bool:
        """The connection is up (neither side has closed it)."""
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def begin(self, data: bytes) -> None:
        """Send one request (head and body, already encoded); the reply is recorded from here on."""
        assert self.transport is not None
        self._reset()
        self.busy = True
        self.sent_at = asyncio.get_running_loop().time()
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

    def body(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)

    def finish(self) -> bool:
        """After a whole reply: whether the connection may carry another request (else it is closed)."""
        self.busy = False
        again = self.open and self.failure is None and self.keep_alive
        if not again:
            self.close()
        return again

    def close(self, why: str = "the connection was closed by the client") -> None:
        """Close at once (abort): unsent bytes and an unread reply are dropped.

        A request still waiting on the connection ends with failure ``"closed"`` (``why``).
        """
        if self.busy and not self.complete and self.failure is None:
            self.failure, self.why = ("broken" if self.headers_done else "closed"), why
            with contextlib.suppress(RuntimeError):  # a waiter in a closed loop: nothing to wake
                self._wake()
        self.busy = False
        transport = self.transport
        if transport is None or self.lost:
            return
        try:
            transport.abort()
        except RuntimeError:
            # Its event loop is closed, so the close cannot be scheduled: end the TCP connection now and
            # drop this side's references, so the transport is freed (and its socket closed) at once.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.lost = True
            self.transport = None
            self.parser = None
            self.pool.lost(self)

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
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("not_http", "the server switched protocols")
        except httptools.HttpParserError as err:
            self._fail("broken" if self.headers_done else "not_http", f"unreadable HTTP reply ({err})")
        # llhttp keeps an unfinished header or trailer in memory: the raw bytes are bounded here, checked
        # after each read (one read is at most 256 KiB, the most that can be held past a limit).
        if self.failure is None and not self.complete:
            if not self.headers_done and self.received > MAX_HEAD_BYTES:
                self._fail("head_too_large", "")
            elif self.received > FRAMING_ALLOWANCE * self.max_bytes + MAX_HEAD_BYTES:
                self._fail("too_large", "")
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.lost_at = asyncio.get_running_loop().time()
        if self.busy and not self.complete and self.failure is None:
            if self.headers_done and self.length is None and not self.chunked and exc is None:
                self.complete = True  # a body delimited by the connection's orderly end (HTTP/1.0 style)
            else:
                why = f"{type(exc).__name__}: {exc}" if exc is not None else "the server closed the connection"
                self._fail("broken" if self.headers_done else "closed", why)
        self._wake()
        self.pool.lost(self)

    # ------------------------------------------------------------------------- httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:  # a second reply in the same bytes: not asked for
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete or self.headers_done:  # trailers (after a chunked body) are not read
            return
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
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
            elif key == b"content-type" and not self.content_type:
                self.content_type = value.decode("latin-1")
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

    A request that finds ``limit`` connections busy waits its turn: a connection freed by a finished
    request goes to the longest-waiting one, and a lost connection's place lets it open a new one.

    Args:
        host: Host to connect to (the proxy's, with a proxy).
        port: Its port.
        tls: The TLS context, or ``None`` for plain TCP.
        max_bytes: Passed to each `Connection`.
        limit: Most connections open (and opening) at once.
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
        self.closed = False
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()

    def take_idle(self) -> Connection | None:
        """An idle connection still open, if any and nobody is waiting for one (no timer needed)."""
        if self._waiters:
            return None
        while self.idle:
            conn = self.idle.pop()
            if conn.open:
                return conn
            conn.close()
        return None

    async def acquire(self, connect_timeout: float | None, *, fresh: bool = False) -> tuple[Connection, bool]:
        """A connection (an idle one if any) and whether it was reused.

        Args:
            connect_timeout: Seconds allowed to open a new connection (``None``: the caller's own limit);
                waiting for a free place is bounded only by the caller.
            fresh: Do not take an idle connection (one just proved stale).

        Raises:
            OSError: The connection could not be made (refused, unreachable, TLS failure), or the pool
                was closed (`PoolClosed`).
            ValueError: The host name cannot be looked up as given (an invalid label).
            TimeoutError: ``connect_timeout`` passed while connecting.
        """
        while True:
            if self.closed:
                raise PoolClosed("the connection pool was closed")
            conn = None if fresh else self.take_idle()
            if conn is not None:
                return conn, True
            reserved = False
            if self._waiters or len(self.open) + self.opening >= self.limit:
                if fresh and self.idle:
                    self.idle.pop().close()  # room for the new connection: its place frees when it is lost
                handed = await self._wait_turn()
                if handed is not None:
                    if handed.open and not self.closed:
                        return handed, True
                    handed.close()  # lost before this request could use it: its place is freed; wait again
                    continue
                reserved = True  # a place was freed for this request: `_free_place` counted it in `opening`
                if self.closed:
                    self.opening -= 1
                    raise PoolClosed("the connection pool was closed")
            break
        if not reserved:
            self.opening += 1
        made = False
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self.max_bytes, self), self.host, self.port, ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None)
            made = not conn.lost and not self.closed
        finally:
            self.opening -= 1
            if not made:
                self._free_place()  # this request's place goes to the next in line
        if not made:  # lost before it could be used, or the pool closed meanwhile
            conn.close()
            raise PoolClosed("the connection pool was closed") if self.closed else ConnectionResetError(
                "the server closed the connection at once")
        self.open.add(conn)
        return conn, False

    async def _wait_turn(self) -> Connection | None:
        """Wait for a freed connection (returned) or a free place (``None``, already reserved)."""
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed something as it was cancelled: the turn passes to the next in line.
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self.opening -= 1
                    self._free_place()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def release(self, conn: Connection) -> None:
        """Take back a connection after its request: to the next waiting request, or kept idle."""
        if self.closed:
            conn.close()
            return
        if not conn.finish():
            return  # closed: `lost` frees its place when the close completes
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def lost(self, conn: Connection) -> None:
        """A connection ended (closed by either side): its place goes to a waiting request."""
        if conn in self.open:
            self.open.discard(conn)
            self._free_place()

    def _free_place(self) -> None:
        if self.closed:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.opening += 1  # reserved for that request, which opens the connection
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close every connection, idle or busy; requests waiting for a place fail with `PoolClosed`."""
        self.closed = True
        for conn in list(self.open):
            conn.close("the model client was closed")
        self.open.clear()
        self.idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # a waiter in a closed loop: nobody to tell
                    waiter.set_exception(PoolClosed("the connection pool was closed"))
        self._waiters.clear()
