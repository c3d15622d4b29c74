"""Splitting a streamed reply into thinking and answer as it arrives (Qwen3's ``<think> ... </think>``)."""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class ThinkSplitter:
    """Routes streamed text to reasoning or answer.

    A reply that opens with ``<think>`` (after whitespace) thinks until ``</think>``; with ``thinking=True``
    the template may already have opened the block, so text is reasoning until ``</think>`` from the start.
    Text that could be the start of a marker is held back until the next piece decides it. The final parse by
    the prompt format remains the authority; this only labels what streams.

    Args:
        thinking_open: The block is open from the first token (Qwen3 with ``enable_thinking``).
    """

    def __init__(self, thinking_open: bool = False) -> None:
        self._state = "thinking" if thinking_open else "start"
        self._held = ""

    def push(self, text: str) -> list[tuple[str, str]]:
        """Feed a delta; return ``(kind, text)`` pieces ready to emit, ``kind`` ``reasoning`` or ``answer``."""
        self._held += text
        out: list[tuple[str, str]] = []
        while self._held:
            if self._state == "start":
                stripped = self._held.lstrip()
                if stripped.startswith(THINK_OPEN):
                    self._held = stripped[len(THINK_OPEN):]
                    self._state = "thinking"
                    continue
                if THINK_OPEN.startswith(stripped):  # could still become "<think>"
                    break
                self._state = "answer"
                continue
            if self._state == "thinking":
                i = self._held.find(THINK_CLOSE)
                if i != -1:
                    if i:
                        out.append(("reasoning", self._held[:i]))
                    self._held = self._held[i + len(THINK_CLOSE):]
                    self._state = "after"
                    continue
                keep = _partial_suffix(self._held, THINK_CLOSE)
                ready = self._held[: len(self._held) - keep]
                if ready:
                    out.append(("reasoning", ready))
                self._held = self._held[len(ready):]
                break
            if self._state == "after":  # the blank lines between </think> and the answer belong to neither
                self._held = self._held.lstrip("\n")
                if not self._held:
                    break
                self._state = "answer"
                continue
            out.append(("answer", self._held))
            self._held = ""
        return out

    def flush(self) -> list[tuple[str, str]]:
        """What is still held at the end of the reply."""
        held, self._held = self._held, ""
        if not held:
            return []
        if self._state == "after":
            held = held.lstrip("\n")
        return [("reasoning" if self._state == "thinking" else "answer", held)] if held else []


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0
