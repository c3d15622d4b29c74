"""Reading a benchmark's data files (untrusted input): bounded in size, UTF-8, JSON objects only.

Every loader (BFCL, the tool-use files, Qwen-Agent's code-interpreter tasks) reads through here, so a bad
file ends in one `BadData` (or `MissingData`) error naming the file and line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qwenkit._untrusted import MAX_JSON_DEPTH, clean_json
from qwenkit.bench.errors import BadData, MissingData

MAX_DATA_BYTES = 256 * 1024 * 1024
"""Largest data file read (the biggest BFCL file is a few MB): a bigger one is refused, not read into memory."""


def read_data_file(path: Path, what: str = "data file") -> bytes:
    """The bytes of a data file.

    Args:
        path: The file.
        what: What the file is, for the error messages (``BFCL data file``).

    Raises:
        MissingData: The file does not exist.
        BadData: It is not a regular file, is larger than `MAX_DATA_BYTES`, or cannot be read.
    """
    try:
        if not path.is_file():
            raise (BadData(f"the {what} {path} is not a file.") if path.exists()
                   else MissingData(f"missing {what} {path}."))
        size = path.stat().st_size
        if size > MAX_DATA_BYTES:
            raise BadData(f"the {what} {path} is {size} bytes; at most {MAX_DATA_BYTES} are read.")
        return path.read_bytes()
    except OSError as exc:
        raise BadData(f"cannot read the {what} {path}: {exc.strerror or exc}.") from exc


def json_kind(value: Any) -> str:
    """The JSON name of a value's type (``array``, ``string``, ...)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def parse_jsonl(data: bytes, source: str) -> list[tuple[int, dict[str, Any]]]:
    """Parse JSON Lines bytes into ``(line number, object)`` pairs; blank lines are skipped.

    Each object is depth-limited and has its lone surrogates (from ``\\ud800`` escapes) replaced, so it can
    be sent to a server and written to a results file.

    Raises:
        BadData: A line is not UTF-8, not JSON, not a JSON object, or nested too deeply.
    """
    out: list[tuple[int, dict[str, Any]]] = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadData(f"{source} line {n} is not UTF-8 text (byte {exc.start + 1}).") from exc
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadData(f"{source} line {n} is not JSON ({exc.msg} at column {exc.colno}).") from exc
        except RecursionError as exc:
            raise BadData(f"{source} line {n} is nested too deeply.") from exc
        if not isinstance(obj, dict):
            raise BadData(f"{source} line {n} is a JSON {json_kind(obj)}, not an object.")
        try:
            obj, _ = clean_json(obj)
        except ValueError as exc:
            raise BadData(f"{source} line {n} is nested deeper than {MAX_JSON_DEPTH} levels.") from exc
        out.append((n, obj))
    return out


def short(text: str, limit: int = 80) -> str:
    """``text`` made one printable line and cut to ``limit`` characters, to quote ids and keys from a file in an
    error (they may be huge, or hold line breaks)."""
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def first_problem(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``field: message``."""
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(short(str(p), 40) for p in err["loc"]) or "the record"
    return f"{short(where, 120)}: {short(err['msg'], 200)}"


__all__ = ["MAX_DATA_BYTES", "first_problem", "json_kind", "parse_jsonl", "read_data_file", "short"]
