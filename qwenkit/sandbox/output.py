"""Output handling for one cell: capped collection (head and tail kept) and the observation text.

The cap is a memory bound as well as a context bound: once a stream's head is full, only a fixed-size
tail is kept, so a print flood costs the client constant memory however long it runs.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from qwenkit.sandbox.result import ExecutionError, ExecutionResult

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_KERNEL_DROP = re.compile(r"\[\.\.\. (\d+) characters dropped in the kernel \.\.\.\]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def collapse_carriage_returns(text: str) -> str:
    """Keep, on each line, only what a terminal would show after ``\\r`` rewrites (progress bars)."""
    if "\r" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        parts = line.split("\r")
        kept = next((p for p in reversed(parts) if p), "")
        lines.append(kept)
    return "\n".join(lines)


def shorten(text: str, limit: int) -> str:
    """Keep at most ``limit`` characters of ``text``: its head and its tail around a drop note."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters dropped ...]\n{text[-half:]}"


def short_traceback(text: str, limit: int) -> str:
    """Keep the end of a traceback (where the error is), at most ``limit`` characters, on line bounds."""
    text = text.strip("\n")
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    cut = tail.find("\n")
    return "[... earlier frames dropped ...]\n" + (tail[cut + 1 :] if cut >= 0 else tail)


class CappedText:
    """Text accumulated up to ``limit`` characters: the first half and the most recent half are kept.

    Args:
        limit: Most characters kept (0: keep nothing, count everything as dropped).
    """

    def __init__(self, limit: int) -> None:
        self.head_limit = limit - limit // 2
        self.tail_limit = limit // 2
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.dropped = 0
        self.total = 0

    def append(self, text: str) -> None:
        """Add ``text``; once the head is full, older tail text is dropped to keep the tail bounded."""
        self.total += len(text)
        room = self.head_limit - self._head_len
        if room > 0:
            take = text[:room]
            self._head.append(take)
            self._head_len += len(take)
            text = text[len(take) :]
        if not text:
            return
        if len(text) > self.tail_limit:
            self.dropped += len(text) - self.tail_limit
            text = text[len(text) - self.tail_limit :] if self.tail_limit else ""
        self._tail.append(text)
        self._tail_len += len(text)
        while self._tail_len > self.tail_limit:
            first = self._tail[0]
            excess = self._tail_len - self.tail_limit
            if len(first) <= excess:
                self._tail.popleft()
                self.dropped += len(first)
                self._tail_len -= len(first)
            else:
                self._tail[0] = first[excess:]
                self.dropped += excess
                self._tail_len -= excess

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        """The kept text, with a note where characters were dropped."""
        head, tail = "".join(self._head), "".join(self._tail)
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} characters dropped ...]\n{tail}"


ImageSaver = Callable[[bytes], str]
"""Saves PNG bytes and returns the file's path."""


class CellCollector:
    """Turns one cell's iopub messages into an `ExecutionResult`'s fields, within the output caps.

    Args:
        max_output_chars: Cap for each of stdout, stderr and the last value's text.
        max_images: Most images saved for one cell.
        save_image: Called with the PNG bytes of each image display.
    """

    def __init__(self, max_output_chars: int, max_images: int, save_image: ImageSaver) -> None:
        self.stdout = CappedText(max_output_chars)
        self.stderr = CappedText(max_output_chars)
        self.max_output_chars = max_output_chars
        self.max_images = max_images
        self.save_image = save_image
        self.result: str | None = None
        self.result_dropped = 0
        self.images: list[str] = []
        self.dropped_images = 0
        self.error: ExecutionError | None = None
        self.kernel_dropped = 0

    def feed(self, msg_type: str, content: dict[str, Any]) -> None:
        """Take one iopub message of the cell (status messages are the caller's business)."""
        if msg_type == "stream":
            target = self.stderr if content.get("name") == "stderr" else self.stdout
            text = str(content.get("text", ""))
            # Count the kernel's own drop markers now: the client cap may drop the marker itself.
            self.kernel_dropped += sum(int(n) for n in _KERNEL_DROP.findall(text))
            target.append(text)
        elif msg_type in ("display_data", "execute_result", "update_display_data"):
            data = content.get("data") or {}
            has_image = self._image(data)
            text = data.get("text/plain")
            if msg_type == "execute_result" and isinstance(text, str) and not has_image:
                self.result_dropped = max(len(text) - self.max_output_chars, 0)
                self.result = shorten(text, self.max_output_chars)
            elif isinstance(text, str) and not has_image:
                self.stdout.append(text if text.endswith("\n") else text + "\n")
        elif msg_type == "error":
            tb = strip_ansi("\n".join(str(line) for line in content.get("traceback") or []))
            self.error = ExecutionError(
                name=str(content.get("ename", "Error")),
                value=strip_ansi(str(content.get("evalue", ""))),
                traceback=short_traceback(tb, 20_000),
            )

    def _image(self, data: dict[str, Any]) -> bool:
        png = data.get("image/png")
        if not isinstance(png, str):
            return False
        try:
            raw = base64.b64decode(png, validate=False)
        except (binascii.Error, ValueError):
            return False
        if not raw.startswith(b"\x89PNG"):
            return False  # the kernel is untrusted: only real PNGs are written as .png files
        if len(self.images) >= self.max_images:
            self.dropped_images += 1
        else:
            self.images.append(self.save_image(raw))
        return True

    def fields(self) -> dict[str, Any]:
        """The collected output as `ExecutionResult` keyword arguments."""
        dropped = self.stdout.dropped + self.stderr.dropped + self.result_dropped + self.kernel_dropped
        return {
            "stdout": self.stdout.text(),
            "stderr": self.stderr.text(),
            "result": self.result,
            "images": list(self.images),
            "error": self.error,
            "dropped_chars": dropped,
            "dropped_images": self.dropped_images,
            "truncated": dropped > 0 or self.dropped_images > 0,
        }


def _block(title: str, body: str) -> str:
    return f"{title}:\n```\n{body.rstrip()}\n```"


def format_observation(result: ExecutionResult, *, traceback_chars: int = 1500) -> str:
    """Write a result as the observation a model reads.

    Sections appear only when present: ``stdout``, ``stderr``, ``Out`` (last value), ``error`` (a
    short traceback), one ``![fig-N](path)`` line per image, then notes on truncation, timeouts and
    restarts. A cell with no output at all reads ``Finished execution (no output).``.
    """
    parts: list[str] = []
    if result.previous_state_lost:
        # First, because it explains what follows (a NameError for a variable defined earlier, say).
        parts.append(
            f"[Note: {result.previous_state_lost}; this cell ran in a new kernel, so earlier variables and "
            "files are gone.]"
        )
    stdout = collapse_carriage_returns(result.stdout)
    if stdout.strip():
        parts.append(_block("stdout", stdout))
    stderr = collapse_carriage_returns(result.stderr)
    if stderr.strip():
        parts.append(_block("stderr", stderr))
    if result.result is not None:
        parts.append(_block("Out", result.result))
    if result.error is not None:
        err = result.error
        tb = short_traceback(err.traceback, traceback_chars) if err.traceback else f"{err.name}: {err.value}"
        parts.append(_block("error", tb))
    for path in result.images:
        name = path.rsplit("/", 1)[-1].removesuffix(".png")
        parts.append(f"![{name}]({path})")
    notes: list[str] = []
    if result.dropped_chars:
        notes.append(f"output truncated: {result.dropped_chars} characters dropped (head and tail kept)")
    if result.dropped_images:
        notes.append(f"{result.dropped_images} more image(s) not saved (per-cell image limit)")
    if result.kernel_died:
        code = f" (exit code {result.exit_code})" if result.exit_code is not None else ""
        notes.append(
            f"the kernel died while running this cell{code}, e.g. os._exit, a crash or running out of "
            "memory; a new kernel starts on the next call and all variables and files are lost"
        )
    elif result.timed_out and result.restarted:
        notes.append(
            f"the cell timed out after {result.timeout_s:g} s and did not stop when interrupted; the "
            "kernel was restarted and all variables and files are lost"
        )
    elif result.timed_out:
        notes.append(
            f"the cell timed out after {result.timeout_s:g} s and was interrupted; variables set "
            "before the interrupt are kept"
        )
    elif result.restarted:
        notes.append("the kernel was restarted; all variables and files are lost")
    parts += [f"[Note: {n}.]" for n in notes]
    return "\n\n".join(parts) if parts else "Finished execution (no output)."
