"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for backend tests (real sockets, real HTTP)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One scripted answer: an HTTP status with a JSON body, or an SSE stream of chunks.

    Attributes:
        raw: Body bytes sent as they are (with ``content_type``), instead of ``body``/``sse``.
        headers: Extra response headers (``Retry-After``, ``content-encoding``, ...).
        delay: Seconds to wait before the headers.
        never: Never answer (a stalled server); the connection stays open until the client gives up.
        trickle: Send the body one byte at a time, this many seconds apart.
        stall_after: Send the headers and this many body bytes, then nothing more.
        forever: Send the headers (chunked) and then this payload again and again.
        close_after: Send the headers and this many body bytes, then close the connection.
    """

    status: int = 200
    body: Any = None
    sse: list[dict[str, Any]] | None = None
    delay: float = 0.0
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    never: bool = False
    trickle: float = 0.0
    stall_after: int | None = None
    forever: bytes | None = None
    close_after: int | None = None


def chat_body(text: str, *, tool_calls: list[dict[str, Any]] | None = None, stop_reason: str | None = None,
              finish: str = "stop") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "stop_reason": stop_reason}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def as_stream(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE chunks a server would send for a non-streamed reply ``body``."""
    choice = body["choices"][0]
    msg = choice["message"]
    out = [chunk({"role": "assistant", "content": msg.get("content") or ""})]
    for i, tc in enumerate(msg.get("tool_calls") or []):
        out.append(chunk({"tool_calls": [{"index": i, **tc}]}))
    out.append(chunk({}, finish=choice["finish_reason"]))
    out.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
                "usage": body["usage"]})
    return out


NOT_FOUND = Reply(404, {"detail": "Not Found"})


@dataclass
class StubServer:
    """Answers each request with the next of ``replies`` (then ``default``, else a 500).

    A request whose path is in ``routes`` gets that reply instead, every time, without using up
    ``replies`` and without being recorded in ``requests`` (``route_hits`` records it): side endpoints
    such as ``/v1/models`` or ``/tokenize``. A route may be a function of the request body. Any other
    path that is not a completions endpoint is answered 404 the same way: the scripted replies are for
    completions only, so a client asking a side endpoint first does not use them up.
    """

    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """Loop time at which each request arrived."""
    headers: list[dict[str, str]] = field(default_factory=list)
    """Each request's headers (lower-case names)."""
    targets: list[str] = field(default_factory=list)
    """Each request line's target (a path, or a whole URL when the stub serves as a proxy)."""
    routes: Mapping[str, Reply | Callable[[dict[str, Any]], Reply]] = field(default_factory=dict)
    default: Reply | None = None
    route_hits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Each routed request: its path and body."""
    port: int = 0
    _server: asyncio.Server | None = None
    connections: int = 0  # connections accepted (a kept-alive one serves several requests)
    tls: ssl.SSLContext | None = None  # serve HTTPS with this server context
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> StubServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:  # handlers of stalled or endless replies are still running
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = json.loads(body or b"{}")
                path = lines[0].split(" ")[1].split("?")[0] if " " in lines[0] else ""
                route = self.routes.get(path)
                if route is None and not path.endswith("/completions"):
                    route = NOT_FOUND  # /v1/models, /tokenize, ...: a server without them, as vLLM answers
                if route is not None:
                    self.route_hits.append((path, request))
                    await self._answer(route(request) if callable(route) else route, request, writer)
                    continue
                self.requests.append(request)
                self.headers.append(headers)
                self.targets.append(lines[0].split(" ")[1] if " " in lines[0] else "")
                self.arrivals.append(asyncio.get_running_loop().time())
                if self.replies:
                    reply = self.replies.pop(0)
                else:
                    reply = self.default or Reply(500, {"error": {"message": "no more"}})
                await self._answer(reply, request, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, reply: Reply, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(reply.delay)
        if reply.never:
            await asyncio.sleep(3600)
        sse = reply.sse
        if sse is None and request.get("stream") and reply.status == 200 and isinstance(reply.body, dict):
            sse = as_stream(reply.body)
        if reply.raw is not None:
            data, ctype = reply.raw, reply.content_type
        elif sse is not None:
            payload = "".join(f"data: {json.dumps(c)}\n\n" for c in sse) + "data: [DONE]\n\n"
            data, ctype = payload.encode(), "text/event-stream"
        else:
            data, ctype = json.dumps(reply.body if reply.body is not None else {}).encode(), reply.content_type
        extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        if reply.forever is not None:
            writer.write(f"HTTP/1.1 {reply.status} X\r\ncontent-type: {ctype}\r\n{extra}"
                         "transfer-encoding: chunked\r\n\r\n".encode())
            while True:
                writer.write(f"{len(reply.forever):x}\r\n".encode() + reply.forever + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0)
        writer.write(f"HTTP/1.1 {reply.status} X\r\ncontent-type: {ctype}\r\n{extra}"
                     f"content-length: {len(data)}\r\n\r\n".encode())
        if reply.close_after is not None:
            writer.write(data[: reply.close_after])
            await writer.drain()
            raise ConnectionResetError  # ends the handler, which closes the connection
        if reply.stall_after is not None:
            writer.write(data[: reply.stall_after])
            await writer.drain()
            await asyncio.sleep(3600)
        if reply.trickle:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(reply.trickle)
            return
        writer.write(data)
        await writer.drain()


class ThreadedStub:
    """Runs a `StubServer` on its own event loop in a thread, for tests that call blocking code (the CLI)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.server = StubServer(replies)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.server.__aenter__())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> StubServer:
        self._thread.start()
        self._ready.wait(5)
        return self.server

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
