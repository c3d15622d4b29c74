"""Collecting one cell's kernel messages into an `ExecutionResult`'s fields, within hard caps.

The kernel is untrusted: code in it can send any message on its own sockets (``get_ipython().kernel.
session.send(...)``), with fields of any type and size up to the transport's message cap. So every
field of every message is type-checked, capped and cleaned of lone surrogates before it is kept, and
images are checked (count, bytes per image and per cell, a real PNG) before they are written.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwenkit._untrusted import clean_text
from qwenkit.sandbox.images import png_problem
from qwenkit.sandbox.result import ExecutionError
from qwenkit.sandbox.text import CappedText, short_traceback, shorten, strip_ansi

# Bounded digit count: a crafted marker with thousands of digits must not reach int() (a ValueError).
_KERNEL_DROP = re.compile(r"\[\.\.\. (\d{1,15}) characters dropped in the kernel \.\.\.\]")

MAX_NAME_CHARS = 200
"""Longest exception class name kept."""
MAX_VALUE_CHARS = 2_000
"""Longest exception message kept (head and tail)."""
MAX_TRACEBACK_CHARS = 20_000
"""Longest traceback kept (its end, where the error is)."""

ImageSaver = Callable[[bytes], "str | None"]
"""Saves checked PNG bytes and returns the file's path, or ``None`` when the outputs budget refused them."""


@dataclass(frozen=True)
class OutputCaps:
    """Per-cell limits on what a kernel's messages may add to a result.

    Attributes:
        max_output_chars: Characters kept for each of stdout, stderr and the last value.
        max_images: Images saved.
        max_image_bytes: Bytes of one PNG image.
        max_cell_image_bytes: Bytes of all images of the cell together.
        max_image_pixels: Pixels (width x height) of one image.
    """

    max_output_chars: int = 10_000
    max_images: int = 16
    max_image_bytes: int = 4 * 1024 * 1024
    max_cell_image_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 25_000_000


class CellCollector:
    """Turns one cell's messages into an `ExecutionResult`'s fields, within the caps.

    Args:
        caps: Output and image limits of the cell.
        save_image: Called with the bytes of each accepted PNG image.
    """

    def __init__(self, caps: OutputCaps, save_image: ImageSaver) -> None:
        self.caps = caps
        self.stdout = CappedText(caps.max_output_chars)
        self.stderr = CappedText(caps.max_output_chars)
        self.save_image = save_image
        self.result: str | None = None
        self.result_dropped = 0
        self.images: list[str] = []
        self.image_bytes = 0
        self.dropped_images = 0
        self.invalid_images = 0
        self.error: ExecutionError | None = None
        self.failed_reply: ExecutionError | None = None
        self.kernel_dropped = 0
        self.replaced = False

    # ------------------------------------------------------------------------------ cleaning
    def _text(self, value: Any, limit: int) -> str:
        """A message field as clean text of at most ``limit`` characters (head and tail kept)."""
        text = value if isinstance(value, str) else "" if value is None else repr(type(value))
        text = shorten(text, limit)
        text, hit = clean_text(text)
        self.replaced |= hit
        return text

    def _stream_text(self, value: Any) -> str:
        if not isinstance(value, str):
            return ""
        # Count the kernel's own drop markers first: the cut below or the client cap may drop them.
        self.kernel_dropped += sum(int(n) for n in _KERNEL_DROP.findall(value))
        # Then keep only the head and tail the caps can use: cleaning 60 MB of text that is dropped
        # anyway would cost time for nothing (the seam always lies in the part `CappedText` drops).
        limit = 2 * self.caps.max_output_chars + 200
        if len(value) > limit:
            self.kernel_dropped += len(value) - limit
            value = value[: limit // 2] + value[-(limit // 2) :]
        text, hit = clean_text(value)
        self.replaced |= hit
        return text

    # --------------------------------------------------------------------------------- feed
    def feed(self, msg_type: str, content: Any) -> None:
        """Take one message of the cell: iopub output, or its ``execute_reply`` (status messages are the
        caller's business)."""
        if not isinstance(content, dict):
            return
        if msg_type == "stream":
            target = self.stderr if content.get("name") == "stderr" else self.stdout
            target.append(self._stream_text(content.get("text")))
        elif msg_type in ("display_data", "execute_result", "update_display_data"):
            data = content.get("data")
            if not isinstance(data, dict):
                return
            has_image = self._image(data.get("image/png"))
            raw = data.get("text/plain")
            if not isinstance(raw, str) or has_image:
                return
            if msg_type == "execute_result":
                self.result_dropped = max(len(raw) - self.caps.max_output_chars, 0)
                self.result = self._text(raw, self.caps.max_output_chars)
            else:
                text = self._stream_text(raw)
                self.stdout.append(text if text.endswith("\n") else text + "\n")
        elif msg_type == "error":
            self.error = self._error(content)
        elif msg_type == "execute_reply" and content.get("status") in ("error", "aborted"):
            # The reply says the cell failed; when no `error` message came (an exception IPython could
            # not format, a replaced showtraceback), this is the only sign of it.
            if content.get("status") == "aborted":
                self.failed_reply = ExecutionError(name="Aborted", value="the kernel aborted the cell")
            else:
                self.failed_reply = self._error(content)

    def _error(self, content: dict[str, Any]) -> ExecutionError:
        lines = content.get("traceback")
        kept: list[str] = []
        size = 0
        if isinstance(lines, list):
            # From the end (where the error is), stopping once the cap is reached: a traceback of a
            # million lines or of one 30 MB line costs no more than a short one.
            for line in reversed(lines):
                if size >= MAX_TRACEBACK_CHARS:
                    break
                text = line if isinstance(line, str) else ""
                text = text[-(MAX_TRACEBACK_CHARS - size) :]
                kept.append(text)
                size += len(text) + 1
        tb = self._text(strip_ansi("\n".join(reversed(kept))), MAX_TRACEBACK_CHARS + 100)
        name = self._text(content.get("ename"), MAX_NAME_CHARS) or "Error"
        value = strip_ansi(self._text(content.get("evalue"), MAX_VALUE_CHARS))
        return ExecutionError(name=name, value=value, traceback=short_traceback(tb, MAX_TRACEBACK_CHARS))

    def _image(self, png: Any) -> bool:
        """Save one ``image/png`` value if it passes every check; True when it was an image display."""
        if not isinstance(png, str):
            return False
        caps = self.caps
        # Base64 is 4 characters per 3 bytes: refuse an oversized image before decoding it.
        if len(png) > (caps.max_image_bytes + 2) // 3 * 4 + 1024:
            self.dropped_images += 1
            return True
        try:
            raw = base64.b64decode(png, validate=False)
        except (binascii.Error, ValueError):
            self.invalid_images += 1
            return True
        if len(raw) > caps.max_image_bytes:
            self.dropped_images += 1
            return True
        if png_problem(raw, caps.max_image_pixels) is not None:
            self.invalid_images += 1  # the kernel is untrusted: only real PNGs are written as .png files
            return True
        if len(self.images) >= caps.max_images or self.image_bytes + len(raw) > caps.max_cell_image_bytes:
            self.dropped_images += 1
            return True
        path = self.save_image(raw)
        if path is None:
            self.dropped_images += 1
            return True
        self.image_bytes += len(raw)
        self.images.append(path)
        return True

    def fields(self) -> dict[str, Any]:
        """The collected output as `ExecutionResult` keyword arguments."""
        dropped = self.stdout.dropped + self.stderr.dropped + self.result_dropped + self.kernel_dropped
        return {
            "stdout": self.stdout.text(),
            "stderr": self.stderr.text(),
            "result": self.result,
            "images": list(self.images),
            "error": self.error or self.failed_reply,
            "dropped_chars": dropped,
            "dropped_images": self.dropped_images,
            "invalid_images": self.invalid_images,
            "replaced_chars": self.replaced,
            "truncated": dropped > 0 or self.dropped_images > 0,
        }
