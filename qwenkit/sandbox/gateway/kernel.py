"""`GatewayKernel`: one kernel on a Jupyter Kernel Gateway / Enterprise Gateway.

Lifecycle (start, interrupt, restart, delete) goes over the gateway's REST API; messages go over the
kernel's WebSocket channel (``/api/kernels/{id}/channels``, the JSON message format of Jupyter's
kernel protocol) with tornado's WebSocket client. Messages are built with jupyter_client's `Session`.

Everything the gateway sends is untrusted: a WebSocket message is at most `MAX_MESSAGE_BYTES`, a
malformed one is skipped, and the connection is pinged so a gateway that vanished is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from qwenkit.errors import ConfigError, KernelStartError
from qwenkit.sandbox.gateway.endpoint import GatewayEndpoint, RestAnswer, describe_http_error, rest, rest_sync
from qwenkit.sandbox.kernel import MAX_MESSAGE_BYTES, CellEnd

log = logging.getLogger("qwenkit.sandbox")

_QUEUE_MESSAGES = 1000  # received messages buffered before the socket stops being read (back-pressure)
_PING_INTERVAL = 10.0
_PING_TIMEOUT = 10.0  # tornado wants it no longer than the interval
_GONE_STATES = frozenset({"restarting", "autorestarting", "dead"})


def _parent_id(msg: dict[str, Any]) -> str | None:
    parent = msg.get("parent_header")
    value = parent.get("msg_id") if isinstance(parent, dict) else None
    return value if isinstance(value, str) else None


def _content(msg: dict[str, Any]) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}


def _state(msg: dict[str, Any]) -> str | None:
    state = _content(msg).get("execution_state") if msg.get("msg_type") == "status" else None
    return state if isinstance(state, str) else None


def _http_status_error(url: str, what: str, status: int) -> Exception:
    if status in (401, 403):
        return ConfigError(f"the kernel gateway at {url} refused to {what} (HTTP {status}): check the token")
    return KernelStartError(f"the kernel gateway at {url} could not {what} (HTTP {status})")


_DELETE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
"""Waits between DELETE attempts the gateway failed (5xx, 409, 429), about 4 s in all.

jupyter_server answers 500 to a DELETE that lands while its restarter is restarting a crashed kernel
(``InvalidStateError`` in ``multikernelmanager``), and keeps the kernel: without a retry it is left running.
"""

_DELETED = frozenset({200, 202, 204, 404})  # 404: gone already


def _delete_failed(status: int) -> bool:
    """Whether a DELETE answer is a failure worth retrying (the kernel may still be there)."""
    return status >= 500 or status in (409, 429)


async def delete_kernel(endpoint: GatewayEndpoint, kernel_id: str, timeout: float) -> bool:
    """Delete a kernel on the gateway, retrying answers that say it failed; whether it is gone.

    Raises:
        httpx.HTTPError: The gateway could not be reached.
    """
    path = f"/api/kernels/{kernel_id}"
    answer = await rest(endpoint, "DELETE", path, timeout=timeout)
    for delay in _DELETE_RETRY_DELAYS:
        if not _delete_failed(answer.status):
            break
        await asyncio.sleep(delay)
        answer = await rest(endpoint, "DELETE", path, timeout=timeout)
    if answer.status not in _DELETED:
        log.warning("the kernel gateway at %s did not delete kernel %s (HTTP %s)", endpoint.url, kernel_id,
                    answer.status)
    return answer.status in _DELETED


def delete_kernel_sync(endpoint: GatewayEndpoint, kernel_id: str, timeout: float) -> bool:
    """`delete_kernel` without an event loop, with one retry (for finalisers, which must not wait long)."""
    path = f"/api/kernels/{kernel_id}"
    answer = rest_sync(endpoint, "DELETE", path, timeout=timeout)
    if _delete_failed(answer.status):
        time.sleep(_DELETE_RETRY_DELAYS[0])
        answer = rest_sync(endpoint, "DELETE", path, timeout=timeout)
    return answer.status in _DELETED


async def _delete_once_created(endpoint: GatewayEndpoint, post: asyncio.Future[RestAnswer], timeout: float) -> None:
    """Wait (bounded) for a kernel-creating POST whose caller was cancelled, and delete what it created."""
    try:
        # Shielded again: a second cancellation must not cancel the POST, or the new kernel's id is lost.
        answer = await asyncio.wait_for(asyncio.shield(post), timeout)
        kernel_id = answer.field("id")
        if isinstance(kernel_id, str) and kernel_id:
            await delete_kernel(endpoint, kernel_id, min(timeout, 10.0))
    except (Exception, asyncio.CancelledError) as err:  # best effort: the gateway may cull it later
        log.debug("could not delete a kernel whose start was cancelled: %s", err)


def _quickack(ws: WebSocketClientConnection) -> Callable[[], None]:
    """A function that acknowledges received data at once (Linux ``TCP_QUICKACK``), else does nothing.

    Gateways (jupyter_server) leave Nagle's algorithm on for their WebSockets: the second small message
    of a cell (after ``busy``) waits for the ACK of the first, which the client would delay by up to
    40 ms. Acking each message as it is read removes that stall from every round trip.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    sock = getattr(getattr(ws, "stream", None), "socket", None)
    if option is None or not isinstance(sock, socket.socket):
        return lambda: None

    def ack() -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)

    return ack


class GatewayKernel:
    """A kernel started on a gateway, with its WebSocket connection.

    Create with `GatewayKernel.start`; call `close` when done (it deletes the kernel on the gateway).

    Attributes:
        kernel_id: The gateway's id of the kernel.
        workdir: The kernel's working directory as code inside sees it (from the kernelspec).
        startup_s: Seconds from the start request to the kernel's first answer.
    """

    exit_code: int | None = None  # a remote kernel's exit status is not known here
    reaps_strays = False  # the gateway host's launcher owns the kernel's processes

    def __init__(self, endpoint: GatewayEndpoint, kernel_id: str, workdir: str, request_timeout: float) -> None:
        self.endpoint = endpoint
        self.kernel_id = kernel_id
        self.workdir = workdir
        self.request_timeout = request_timeout
        self.startup_s = 0.0
        self.started_at = 0.0
        self._session = Session(key=b"", username="qwenkit")
        self._ws: WebSocketClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_MESSAGES)
        self._gone: str | None = None  # why the kernel is unusable, once it is
        self._closed = False

    # ------------------------------------------------------------------------------------ start
    @classmethod
    async def start(cls, endpoint: GatewayEndpoint, kernel_name: str, *, workdir: str = "",
                    startup_timeout: float = 60.0, request_timeout: float = 30.0) -> GatewayKernel:
        """Ask the gateway for a new kernel, connect to its channels and wait until it answers.

        Raises:
            KernelStartError: The gateway does not answer, failed to start the kernel, or the kernel
                did not answer within ``startup_timeout``.
            ConfigError: The gateway refused the token.
        """
        t0 = time.perf_counter()
        post = asyncio.ensure_future(
            rest(endpoint, "POST", "/api/kernels", payload={"name": kernel_name}, timeout=startup_timeout)
        )
        try:
            # Shielded: the gateway starts the kernel whether or not we stay to read its id, so a start
            # cancelled here (a pool closing) still learns the id and deletes the kernel (no orphan).
            answer = await asyncio.shield(post)
        except asyncio.CancelledError:
            await _delete_once_created(endpoint, post, request_timeout)
            raise
        except httpx.HTTPError as err:
            raise KernelStartError(
                f"the kernel gateway at {endpoint.url} does not answer ({describe_http_error(err)})"
            ) from None
        kernel_id = answer.field("id")
        if answer.status not in (200, 201) or not isinstance(kernel_id, str) or not kernel_id:
            raise _http_status_error(endpoint.url, "start a kernel", answer.status)
        kernel = cls(endpoint, kernel_id, workdir, request_timeout)
        try:
            await kernel._connect(time.monotonic() + startup_timeout)
        except BaseException:
            await kernel.close()
            raise
        kernel.startup_s = time.perf_counter() - t0
        kernel.started_at = time.monotonic()
        return kernel

    async def _connect(self, deadline: float) -> None:
        """Open the channels WebSocket and wait for a ``kernel_info`` round trip (iopub idle included)."""
        request = HTTPRequest(
            self.endpoint.ws_url(f"/api/kernels/{self.kernel_id}/channels?session_id={self._session.session}"),
            headers=self.endpoint.headers,
            connect_timeout=max(deadline - time.monotonic(), 1.0),
            request_timeout=max(deadline - time.monotonic(), 1.0),
            validate_cert=self.endpoint.verify is not False,
            ca_certs=self.endpoint.verify if isinstance(self.endpoint.verify, str) else None,
        )
        try:
            self._ws = await asyncio.wait_for(
                websocket_connect(request, max_message_size=MAX_MESSAGE_BYTES, ping_interval=_PING_INTERVAL,
                                  ping_timeout=_PING_TIMEOUT),
                max(deadline - time.monotonic(), 1.0),
            )
        except HTTPClientError as err:
            raise _http_status_error(self.endpoint.url, "connect to the kernel's channels", err.code) from None
        except Exception as err:  # refused, timed out, TLS, or an answer that is not a WebSocket
            raise KernelStartError(
                f"could not connect to the kernel's channels on {self.endpoint.url}: "
                f"{str(err).strip() or type(err).__name__}"
            ) from None
        stream = getattr(self._ws, "stream", None)
        if stream is not None:  # each request is one small message: send it now, not after an ACK
            with contextlib.suppress(Exception):
                stream.set_nodelay(True)
        self._gone = None
        self._queue = asyncio.Queue(_QUEUE_MESSAGES)
        self._reader = asyncio.ensure_future(self._read_forever(self._ws))
        while time.monotonic() < deadline:
            msg_id = self._send("shell", "kernel_info_request", {})
            if await self._answered(msg_id, min(time.monotonic() + 1.0, deadline)):
                return
            if self._gone is not None:
                raise KernelStartError(f"the kernel stopped while starting ({self._gone}); the gateway's log says why")
        raise KernelStartError(f"the kernel on {self.endpoint.url} did not answer in time")

    async def _answered(self, msg_id: str, until: float) -> bool:
        replied = idle = False
        while not (replied and idle):
            msg = await self._next(until)
            if msg is None:
                return False
            if _parent_id(msg) != msg_id:
                continue
            replied = replied or msg.get("msg_type") == "kernel_info_reply"
            idle = idle or _state(msg) == "idle"
        return True

    # -------------------------------------------------------------------------------- messages
    async def _read_forever(self, ws: WebSocketClientConnection) -> None:
        quickack = _quickack(ws)
        try:
            while (raw := await ws.read_message()) is not None:
                quickack()
                if not isinstance(raw, str):
                    continue  # binary frames carry buffers (widgets); nothing qwenkit reads
                try:
                    msg = json.loads(raw)
                except (ValueError, RecursionError):  # not JSON, or nested deep enough to exhaust the stack
                    continue
                if not isinstance(msg, dict):
                    continue
                if msg.get("channel") == "iopub" and _state(msg) in _GONE_STATES and ws is self._ws:
                    self._gone = self._gone or "the kernel on the gateway died (the gateway restarted or lost it)"
                await self._queue.put(msg)
        finally:
            # Closed by the other side (or this reader failed): unless `close`/`restart` let go of this
            # connection first, the kernel is unusable and waiting for it must end.
            if ws is self._ws and self._gone is None:
                self._gone = f"the connection to the kernel gateway at {self.endpoint.url} was lost"

    async def _next(self, until: float) -> dict[str, Any] | None:
        """The next received message; ``None`` at ``until`` or once the kernel is gone and nothing is left."""
        while True:
            with contextlib.suppress(asyncio.QueueEmpty):
                return self._queue.get_nowait()
            left = until - time.monotonic()
            if left <= 0 or self._gone is not None:
                return None
            try:
                # Wake up now and then to notice a connection that was lost.
                return await asyncio.wait_for(self._queue.get(), min(left, 0.25))
            except TimeoutError:
                continue

    def _send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg = self._session.msg(msg_type, content)
        msg["channel"] = channel
        if self._ws is None or self._gone is not None:
            return str(msg["header"]["msg_id"])
        try:
            # The write is queued on the connection; a failure shows up as a closed connection.
            self._ws.write_message(json.dumps(msg, default=json_default))
        except WebSocketClosedError:
            self._gone = self._gone or f"the connection to the kernel gateway at {self.endpoint.url} was lost"
        return str(msg["header"]["msg_id"])

    def send(self, code: str) -> str:
        """Send ``code`` for execution and return the request's message id."""
        return self._send("shell", "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True,
        })

    async def wait(self, msg_id: str, deadline: float, feed: Callable[[str, dict[str, Any]], None]) -> CellEnd:
        """Pass the request's messages to ``feed`` until it is idle, time runs out, or the kernel is gone.

        Same contract as `SandboxKernel.wait`: output messages, then ``("execute_reply", content)``.
        """
        reply: dict[str, Any] | None = None
        while True:
            msg = await self._next(deadline)
            if msg is None:
                return CellEnd.DIED if self._gone is not None else CellEnd.TIMEOUT
            if _parent_id(msg) != msg_id:
                continue
            msg_type = msg.get("msg_type")
            if not isinstance(msg_type, str):
                continue
            if msg.get("channel") == "shell":
                if msg_type == "execute_reply":
                    reply = _content(msg)
                continue
            if msg_type == "status":
                if _state(msg) != "idle":
                    continue
                if reply is None:  # the reply travels on another channel and may come a moment later
                    reply = await self._take_reply(msg_id, time.monotonic() + 0.5)
                if reply is not None:
                    feed("execute_reply", reply)
                return CellEnd.IDLE
            feed(msg_type, _content(msg))

    async def _take_reply(self, msg_id: str, until: float) -> dict[str, Any] | None:
        while (msg := await self._next(until)) is not None:
            if _parent_id(msg) == msg_id and msg.get("msg_type") == "execute_reply":
                return _content(msg)
        return None

    # ------------------------------------------------------------------------------- lifecycle
    async def _action(self, action: str) -> int | None:
        try:
            answer = await rest(self.endpoint, "POST", f"/api/kernels/{self.kernel_id}/{action}",
                                timeout=self.request_timeout)
        except httpx.HTTPError as err:
            log.debug("%s of kernel %s failed: %s", action, self.kernel_id, err)
            return None
        return answer.status

    async def interrupt(self) -> None:
        """Ask the gateway to interrupt the running cell (``KeyboardInterrupt`` in the code)."""
        if not self._closed:
            await self._action("interrupt")

    async def restart(self, timeout: float = 60.0) -> None:
        """Restart the kernel on the gateway (all state is lost) and reconnect to it.

        Raises:
            KernelStartError: The gateway could not restart it, or it did not answer afterwards.
        """
        if self._closed:
            raise KernelStartError("the kernel was closed")
        old, self._ws = self._ws, None  # its reader stops flagging the kernel as gone
        status = await self._action("restart")
        if old is not None:
            old.close()
        if self._reader is not None:
            self._reader.cancel()
        if status != 200:
            self._gone = f"the kernel gateway at {self.endpoint.url} could not restart the kernel"
            raise KernelStartError(f"{self._gone} (HTTP {status})" if status else self._gone)
        await self._connect(time.monotonic() + timeout)

    async def is_alive(self) -> bool:
        """Whether the kernel can run cells: its connection is open and the gateway did not report it dead."""
        return not self._closed and self._gone is None and self._ws is not None

    @property
    def death_reason(self) -> str | None:
        """Why the kernel became unusable (a lost connection, a restart by the gateway), once it did."""
        return self._gone

    @property
    def closed(self) -> bool:
        return self._closed

    def reap_strays(self) -> int:
        return 0

    async def close(self) -> None:
        """Close the connection and delete the kernel on the gateway (best effort). Idempotent."""
        if self._closed:
            return
        self._closed = True
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        try:
            await delete_kernel(self.endpoint, self.kernel_id, min(self.request_timeout, 10.0))
        except httpx.HTTPError as err:  # the gateway is gone: its kernels went with it, or it culls them
            log.debug("could not delete kernel %s: %s", self.kernel_id, err)

    def kill_now(self) -> None:
        """Delete the kernel on the gateway without an event loop (a blocking request of at most a few
        seconds). The connection is left to the garbage collector. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            delete_kernel_sync(self.endpoint, self.kernel_id, 3.0)
        except httpx.HTTPError as err:
            log.debug("could not delete kernel %s: %s", self.kernel_id, err)
