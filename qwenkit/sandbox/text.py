"""Plain text helpers shared by output collection and the observation text (no other qwenkit imports).

Everything here is linear in the length of its input and never keeps more than it is asked to.
"""

from __future__ import annotations

import re
from collections import deque

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


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

    The cap is a memory bound as well as a context bound: once the head is full, only a fixed-size
    tail is kept, so a print flood costs constant memory however long it runs.

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

    @property
    def head(self) -> str:
        """The kept beginning."""
        return "".join(self._head)

    @property
    def tail(self) -> str:
        """The kept end (after the head, once text was dropped)."""
        return "".join(self._tail)

    def text(self) -> str:
        """The kept text, with a note where characters were dropped."""
        head, tail = self.head, self.tail
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} characters dropped ...]\n{tail}"
