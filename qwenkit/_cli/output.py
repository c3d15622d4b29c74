"""What the ``qwenkit`` command writes and reads: one-line errors, safe streams, JSON lines, standard input.

The command prints whatever a model or a kernel said, so its output must survive any text: lone
surrogates (not encodable as UTF-8), a terminal in a narrower encoding, JSON nested deeper than pydantic
serialises. Nothing here may raise on such text; it is replaced and the output goes on.
"""

from __future__ import annotations

import io
import json
import sys
from typing import IO, Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from qwenkit._untrusted import clean_json, clean_text
from qwenkit.errors import ConfigError

MAX_STDIN_BYTES = 16 * 1024 * 1024
"""Most bytes read from standard input as one prompt."""


def print_error(message: str) -> None:
    """Print ``message`` as one ``qwenkit: error:`` line on stderr (never wrapped)."""
    one_line = " ".join(clean_text(message)[0].split())
    print(f"qwenkit: error: {one_line}", file=sys.stderr, flush=True)


def make_stdio_safe() -> None:
    """Make stdout and stderr replace what they cannot encode instead of raising.

    Called by the command's entry point only (never at import): the text it prints comes from models and
    kernels and may hold lone surrogates, or characters the terminal's encoding lacks.
    """
    for stream in (sys.stdout, sys.stderr):
        # "surrogateescape" (a POSIX locale) only encodes U+DC80..U+DCFF; a model can send any surrogate.
        if isinstance(stream, io.TextIOWrapper) and stream.errors in ("strict", "surrogateescape"):
            stream.reconfigure(errors="replace")


def check_text(value: str, name: str) -> None:
    """Refuse a setting that is not valid text (bytes that are not UTF-8 arrive as lone surrogates).

    Raises:
        ConfigError: ``value`` holds lone surrogates; the message names ``name`` (a flag or variable).
    """
    if clean_text(value)[1]:
        raise ConfigError(f"{name} is not valid UTF-8 text")


def read_stdin_text(what: str, stream: IO[bytes] | None = None) -> str:
    """Read all of standard input as UTF-8 (``-`` as a prompt, as Unix tools do).

    Args:
        what: What the text is, for the error message (e.g. "the question").
        stream: Where to read (default: ``sys.stdin.buffer``).

    Raises:
        ConfigError: The input is not UTF-8 or is larger than `MAX_STDIN_BYTES`.
    """
    source: IO[bytes] = sys.stdin.buffer if stream is None else stream
    data = source.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise ConfigError(f"{what} on standard input is larger than {MAX_STDIN_BYTES // 2**20} MiB")
    return decode_input(data, f"{what} on standard input")


def decode_input(data: bytes, what: str) -> str:
    """Decode bytes typed or piped by the user as UTF-8.

    Raises:
        ConfigError: ``data`` is not UTF-8; the message says where the first bad byte is.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} is not valid UTF-8 (byte {err.start + 1} is {data[err.start]:#04x})") from None


def _jsonable(value: Any) -> Any:
    """A JSON-ready copy of one field, or a note saying why it cannot be shown."""
    if isinstance(value, BaseModel):
        return {name: _jsonable(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list | tuple) and any(isinstance(item, BaseModel) for item in value):
        return [_jsonable(item) for item in value]
    try:
        out, _ = clean_json(to_jsonable_python(value))
        json.dumps(out)  # the depth and encodability checks above make this safe; prove it
    except (PydanticSerializationError, ValueError, TypeError, RecursionError) as err:
        return f"[not shown: {str(err)[:200]}]"
    return out


def event_json(event: BaseModel) -> str:
    """One event as a JSON line, even when it holds text or JSON that pydantic cannot serialise.

    Lone surrogates become U+FFFD; a field too deep to serialise is replaced by a note saying so.
    """
    try:
        return event.model_dump_json()
    except (PydanticSerializationError, ValueError, RecursionError):
        return json.dumps(_jsonable(event), ensure_ascii=False)
