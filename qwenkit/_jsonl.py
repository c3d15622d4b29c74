"""Append-only JSON Lines files that survive a crash: cut-tolerant reading and tail repair before appending.

Transcripts and benchmark results are written one line per record as they happen. A crash can leave the
last line cut short, even inside a multi-byte UTF-8 character, or leave a corrupt last line that ends
with a newline. Readers skip such a tail; writers cut it off before appending, so the next record starts
on a line of its own and no later reader is poisoned by it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 256 * 1024 * 1024
"""A line longer than this is treated as corrupt rather than read into memory whole."""


def iter_lines(data: bytes) -> Iterator[tuple[int, str, bool]]:
    """Yield ``(line_number, text, is_last)`` for each line of ``data``, decoding UTF-8 tolerantly.

    Undecodable bytes (a character cut by a crash) become U+FFFD instead of raising; a record that
    contained them then fails to parse and the caller decides whether that is a cut tail or corruption.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for n, raw in enumerate(lines, 1):
        yield n, raw.decode("utf-8", errors="replace"), n == len(lines)


def repair_tail(path: Path, is_valid: Callable[[str], bool]) -> int:
    """Cut a partial or corrupt last line off ``path`` so appended records start cleanly.

    Args:
        path: The file; nothing happens when it does not exist.
        is_valid: Whether a complete line holds a valid record.

    Returns:
        How many bytes were cut (0 when the tail was sound).
    """
    if not path.is_file():
        return 0
    with path.open("rb+") as fh:
        data = fh.read()
        if not data:
            return 0
        if not data.endswith(b"\n"):  # a write cut short: drop the partial line
            keep = data.rfind(b"\n") + 1
        else:  # a whole last line that is not a record (a crash mid-line, then a newline): drop it too
            start = data.rfind(b"\n", 0, len(data) - 1) + 1
            last = data[start:-1].decode("utf-8", errors="replace")
            keep = len(data) if not last.strip() or is_valid(last) else start
        if keep < len(data):
            fh.truncate(keep)
        return len(data) - keep


def is_json_object(line: str) -> bool:
    """Whether ``line`` is one JSON object (the least every JSONL record here is)."""
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def loads_object(line: str) -> dict[str, Any] | None:
    """Parse one line as a JSON object; ``None`` when it is not one."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None
