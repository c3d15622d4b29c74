"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for backend tests (real sockets, real HTTP)."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One scripted answer: an HTTP status with a JSON body, or an SSE stream of chunks."""

    status: int = 200
    body: dict[str, Any] | None = None
    sse: list[dict[str, Any]] | None = None
    delay: float = 0.0


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


@dataclass
class StubServer:
    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> StubServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = json.loads(body or b"{}")
                self.requests.append(request)
                reply = self.replies.pop(0) if self.replies else Reply(500, {"error": {"message": "no more"}})
                await asyncio.sleep(reply.delay)
                sse = reply.sse
                if sse is None and request.get("stream") and reply.status == 200 and reply.body:
                    sse = as_stream(reply.body)
                if sse is not None:
                    payload = "".join(f"data: {json.dumps(c)}\n\n" for c in sse) + "data: [DONE]\n\n"
                    data, ctype = payload.encode(), "text/event-stream"
                else:
                    data, ctype = json.dumps(reply.body or {}).encode(), "application/json"
                writer.write(
                    f"HTTP/1.1 {reply.status} X\r\ncontent-type: {ctype}\r\ncontent-length: {len(data)}\r\n\r\n"
                    .encode() + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


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
