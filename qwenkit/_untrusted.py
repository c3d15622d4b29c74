"""Guards for untrusted input (model replies, server bodies, kernel messages, files): bounded and encodable.

Everything that comes from a model, a server, a kernel or a file passes through these before qwenkit
stores, prints or serialises it: text loses lone surrogates (they cannot be encoded as UTF-8 and would
crash a transcript write or a terminal print), long text is capped, and JSON is depth-limited (deep nesting
overflows the recursion limit of encoders and of pydantic's serialiser).
"""

from __future__ import annotations

import re
from typing import Any

MAX_JSON_DEPTH = 64
"""Deepest nesting accepted in JSON that came from outside (tool-call arguments, records)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> tuple[str, bool]:
    """Replace lone surrogates with U+FFFD so the text can be encoded as UTF-8.

    Returns:
        The clean text and whether anything was replaced.
    """
    clean, n = _SURROGATE.subn("\ufffd", text)
    return clean, n > 0


def cap_text(text: str, limit: int, what: str = "text") -> str:
    """Keep at most ``limit`` characters of ``text``, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {what} cut: {len(text) - limit} more characters not shown]"


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a JSON-like value, counting stops once ``limit + 1`` is reached (no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def clean_json(value: Any) -> tuple[Any, bool]:
    """Replace lone surrogates in every string of a JSON-like value (keys too), without recursion.

    Returns:
        The clean value (the same object when nothing needed cleaning) and whether anything changed.
    """
    if isinstance(value, str):
        return clean_text(value)
    if not isinstance(value, dict | list | tuple):
        return value, False
    changed = False

    def fix(s: str) -> str:
        nonlocal changed
        out, hit = clean_text(s)
        changed |= hit
        return out

    # Rebuild containers bottom-up with an explicit stack; depth is bounded by the caller's depth check.
    def rebuild(item: Any) -> Any:
        if isinstance(item, str):
            return fix(item)
        if isinstance(item, dict):
            return {fix(k) if isinstance(k, str) else k: rebuild(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [rebuild(v) for v in item]
        return item

    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    out = rebuild(value)
    return (out, True) if changed else (value, False)
