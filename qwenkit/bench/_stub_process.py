"""A benchmark's stub server in a child process, so it shares neither the measured CPU nor its event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from typing import Self


class StubProcess:
    """Runs ``python -m MODULE --serve ARGS``, which prints ``PORT <n>`` once it listens on 127.0.0.1.

    Args:
        module: The module whose ``--serve`` starts the server.
        args: Its other command-line arguments.
    """

    def __init__(self, module: str, args: Sequence[str] = ()) -> None:
        self.command = [sys.executable, "-m", module, "--serve", *args]
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"the stub server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    """The next request on a kept-alive connection (method, path, body); ``None`` once the client is gone."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path = [*lines[0].split(" "), "", ""][:2]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    try:
        body = await reader.readexactly(length) if length else b""
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return method, path, body


def response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A kept-alive HTTP/1.1 response with a ``Content-Length``, ready to write."""
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n").encode() + body
