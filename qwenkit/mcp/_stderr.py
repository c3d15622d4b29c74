"""Keep the last few kilobytes of an MCP server process's stderr, for error messages.

The SDK's stdio transport hands the child a real file descriptor for stderr. A chatty or hostile server may
write without end, so the output goes into a pipe that a daemon thread drains into a bounded tail: memory
stays bounded, no disk is used, and the child never blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import TextIO

log = logging.getLogger("qwenkit.mcp")

TAIL_BYTES = 4096
"""How much of the end of a server's stderr is kept."""


class StderrTail:
    """A pipe whose write end is given to a server process as its stderr, and its drained tail.

    Args:
        name: The server's name, for debug logging.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        read_fd, write_fd = os.pipe()
        self._read_fd = read_fd
        self.file: TextIO = open(write_fd, "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by close_writer
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, name=f"mcp-stderr-{name}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while chunk := os.read(self._read_fd, 65536):
                with self._lock:
                    self._tail += chunk
                    del self._tail[:-TAIL_BYTES]
                log.debug("MCP server %r stderr: %s", self.name, chunk[:1000].decode("utf-8", "replace").rstrip())
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.close(self._read_fd)

    def close_writer(self) -> None:
        """Close this process's copy of the write end (the child keeps its own); idempotent."""
        with contextlib.suppress(OSError):
            self.file.close()

    def text(self, limit: int = 800) -> str:
        """The last ``limit`` characters written so far, stripped; empty when nothing was written."""
        with self._lock:
            data = bytes(self._tail)
        return data.decode("utf-8", "replace").strip()[-limit:]
