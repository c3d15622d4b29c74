"""Prompt formats: how tools and tool turns are written for a Qwen model, and how replies are read.

Six formats, one module each:

- ``react``: Qwen's ReAct template (``Thought`` / ``Action`` / ``Action Input`` / ``Observation``).
- ``qwen``: Qwen-Agent's ✿FUNCTION✿ / ✿ARGS✿ / ✿RESULT✿ / ✿RETURN✿ template.
- ``nous``: the Hermes ``<tools>`` / ``<tool_call>`` / ``<tool_response>`` template of Qwen2.5/Qwen3.
- ``qwen3_coder``: Qwen3-Coder's ``<tool_call>`` / ``<function=NAME>`` / ``<parameter=KEY>`` XML calls.
- ``pythonic``: BFCL's prompt-mode format, calls written as a Python list.
- ``native``: the server's own ``tools`` / ``tool_calls`` fields.

Use `get_format` to build one by name. The three text formats share `TextFormat` (in ``base``): a
parser that never raises, reads any reply in time linear in its length, and keeps at most
``max_calls`` calls (default `DEFAULT_MAX_CALLS`); and ``render_calls``, the text a model would write
to make given calls.
"""

from __future__ import annotations

from typing import Any

from qwenkit.llm.formats._json import parse_arguments
from qwenkit.llm.formats.base import DEFAULT_MAX_CALLS, ParsedReply, PromptFormat, RenderedPrompt, TextFormat
from qwenkit.llm.formats.native import NativeFormat
from qwenkit.llm.formats.nous import NousFormat
from qwenkit.llm.formats.pythonic import PythonicFormat
from qwenkit.llm.formats.qwen import QwenFormat
from qwenkit.llm.formats.qwen3_coder import Qwen3CoderFormat
from qwenkit.llm.formats.react import ReActFormat

FORMAT_NAMES = ("react", "qwen", "nous", "qwen3_coder", "pythonic", "native")
"""Names accepted by `get_format`."""

_CLASSES: dict[str, type[PromptFormat]] = {
    "react": ReActFormat,
    "qwen": QwenFormat,
    "nous": NousFormat,
    "qwen3_coder": Qwen3CoderFormat,
    "pythonic": PythonicFormat,
    "native": NativeFormat,
}


def get_format(name: str, **options: Any) -> PromptFormat:
    """Build the prompt format called ``name``.

    Args:
        name: One of `FORMAT_NAMES` (case and surrounding spaces ignored).
        **options: Passed to the format's constructor: ``max_calls`` for every format,
            ``tool_choice`` for every format but react and pythonic,
            ``QwenFormat(parallel=..., lang=...)``, ``Qwen3CoderFormat(tools=...)``,
            ``PythonicFormat(strict=...)``.

    Returns:
        A new format instance.

    Raises:
        ValueError: ``name`` is not a known format, or an option has a bad value.
        TypeError: An option the format does not take.
    """
    cls = _CLASSES.get(name.strip().lower()) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown prompt format {name!r}; choose one of: {', '.join(FORMAT_NAMES)}")
    return cls(**options)


__all__ = [
    "DEFAULT_MAX_CALLS",
    "FORMAT_NAMES",
    "NativeFormat",
    "NousFormat",
    "ParsedReply",
    "PromptFormat",
    "PythonicFormat",
    "Qwen3CoderFormat",
    "QwenFormat",
    "ReActFormat",
    "RenderedPrompt",
    "TextFormat",
    "get_format",
    "parse_arguments",
]
