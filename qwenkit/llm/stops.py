"""Stop words, cut the way a server cuts them: on a whole reply (`apply_stop`) or on a stream (`StopScanner`).

Generation ends *before* the earliest stop word; the word itself is never part of the text. Both the
embedded llama.cpp backend and the scripted test models use these, so a stop word behaves the same
whichever backend a test runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def apply_stop(text: str, stop: Iterable[str]) -> tuple[str, str | None]:
    """Cut ``text`` before the earliest stop word.

    Args:
        text: A whole reply.
        stop: Stop words (empty strings are ignored).

    Returns:
        The text before the earliest stop word (all of it when none occurs) and that word, or ``None``.
        When two words start at the same place, the first one listed wins.
    """
    cut, word = len(text), None
    for s in stop:
        i = text.find(s) if s else -1
        if i != -1 and i < cut:
            cut, word = i, s
    return text[:cut], word


class StopScanner:
    """Finds stop words in text that arrives piece by piece, as a server does.

    `push` returns the text that is safe to show: it holds back any tail that could be the start of a
    stop word, so a stop word is never partly streamed. Pushing a whole text at once and then calling
    `flush` gives exactly `apply_stop`'s cut.

    Args:
        stops: The stop words (empty strings are ignored).

    Attributes:
        stop_word: The stop word found, once one has been (then `push` returns ``""``).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stop_word: str | None = None

    def push(self, text: str) -> str:
        """Add generated text; return what can be emitted. After a stop word is found, returns ``""``."""
        if self.stop_word is not None:
            return ""
        self.pending += text
        before, word = apply_stop(self.pending, self.stops)
        if word is not None:
            self.pending, self.stop_word = "", word
            return before
        keep = max((_overlap(self.pending, s) for s in self.stops), default=0)
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep :]
        return out

    def flush(self) -> str:
        """Return the held-back text once generation has ended without a stop word."""
        out, self.pending = self.pending, ""
        return out


def _overlap(text: str, word: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of ``word``."""
    for n in range(min(len(text), len(word) - 1), 0, -1):
        if text.endswith(word[:n]):
            return n
    return 0
