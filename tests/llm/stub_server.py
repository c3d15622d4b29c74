"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for backend tests (real sockets, real HTTP)."""

from __future__ import annotations

import asyncio
import json
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
                self.requests.append(json.loads(body or b"{}"))
                reply = self.replies.pop(0) if self.replies else Reply(500, {"error": {"message": "no more"}})
                await asyncio.sleep(reply.delay)
                if reply.sse is not None:
                    payload = "".join(f"data: {json.dumps(c)}\n\n" for c in reply.sse) + "data: [DONE]\n\n"
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
