"""A scripted OpenAI-compatible chat server on 127.0.0.1 for synchronous clients (Qwen-Agent's ``oai`` model).

It runs `http.server` in a thread, so a blocking client in the test's own thread can talk to it (the asyncio
stub in ``tests/llm/stub_server.py`` needs the test's event loop to be free). Each POST to
``/v1/chat/completions`` takes the next scripted reply text and answers as a non-streamed completion or,
when the request asks for ``stream``, as server-sent events.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "cmpl-scripted", "object": "chat.completion", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunks(text: str) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "cmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    pieces = [text[i:i + 16] for i in range(0, len(text), 16)] or [""]
    return [chunk({"role": "assistant", "content": ""}), *(chunk({"content": p}) for p in pieces),
            chunk({}, finish="stop")]


class ScriptedOpenAIServer:
    """Answers chat completions with ``replies`` in order; a request past the script gets HTTP 500.

    Use as a context manager; `base_url` is the ``/v1`` URL to give a client.

    Attributes:
        requests: The JSON body of every request, in order.
    """

    def __init__(self, replies: list[str]) -> None:
        self._replies = list(replies)
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    reply = server._replies.pop(0) if server._replies else None
                if reply is None or not self.path.endswith("/chat/completions"):
                    self._send(500, "application/json", json.dumps({"error": {"message": "script exhausted"}}))
                elif body.get("stream"):
                    events = "".join(f"data: {json.dumps(c)}\n\n" for c in _chunks(reply)) + "data: [DONE]\n\n"
                    self._send(200, "text/event-stream", events)
                else:
                    self._send(200, "application/json", json.dumps(_completion(reply)))

            def _send(self, status: int, content_type: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-oai", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def unused(self) -> list[str]:
        """Scripted replies not given yet."""
        with self._lock:
            return list(self._replies)

    def __enter__(self) -> ScriptedOpenAIServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
