"""Fuzz: random bytes decoded as text, random (and cut) JSON, random Unicode, read by every parser.

Each generated input goes through every format's ``parse_completion`` (which calls ``parse``), as it
is and after that format's call opening (so that it reaches the argument reader); through the native
format's server-call path; and through `parse_arguments` / `load_json`. The only assertion is "a
well-formed result, no exception". Inputs are built from one ``st.binary`` draw, so one draw serves
every parser and failures still shrink; most of the run time is json5 reading broken JSON.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.llm.formats import FORMAT_NAMES, NativeFormat, ParsedReply, get_format, parse_arguments
from qwenkit.llm.formats._json import load_json
from qwenkit.llm.formats.base import MAX_PROBLEMS
from qwenkit.types import Completion, ToolCall

FUZZ = settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OPENINGS = {  # text after which the input is read as one call's arguments
    "react": "Thought: t\nAction: f\nAction Input: ",
    "qwen": "✿FUNCTION✿: f\n✿ARGS✿: ",
    "nous": '<tool_call>\n{"name": "f", "arguments": ',
    "native": '<tool_call>\n{"name": "f", "arguments": ',
    "qwen3_coder": "<tool_call>\n<function=f>\n<parameter=a>\n",
    "pythonic": "[f(a=",
}
MARKERS = [
    "Action:", "\nAction Input:", "\nObservation:", "Final Answer:", "Thought:", "✿FUNCTION✿:", "✿ARGS✿:",
    "✿RESULT✿", "✿", "<tool_call>", "</tool_call>", "<tool_response>", "<think>", "</think>", "<code>", "```",
    "```py\n", '{"name": "', '"arguments": ', "\\", '"', "\n",
]  # fmt: skip
MAX_CALLS = (1, 2, 64)


class _Source:
    """Reads a byte string as a stream of small random choices (zeros once it runs out)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        b = self.data[self.at] if self.at < len(self.data) else 0
        self.at += 1
        return b

    def left(self) -> bool:
        return self.at < len(self.data)

    def char(self) -> str:
        """Any code point (lone surrogates included), mostly from the first planes."""
        high, low = self.byte(), self.byte()
        code = (high << 8 | low) if high < 0xF0 else ((high & 0x0F) << 16 | low << 8 | self.byte())
        return chr(min(code, 0x10FFFF))

    def string(self) -> str:
        if self.byte() % 4 == 0:
            return MARKERS[self.byte() % len(MARKERS)]
        return "".join(self.char() for _ in range(self.byte() % 12))


def _json_value(src: _Source, depth: int = 0) -> Any:
    kind = src.byte() % (8 if depth < 8 and src.left() else 5)
    if kind == 0:
        return None
    if kind == 1:
        return bool(src.byte() & 1)
    if kind == 2:
        return int.from_bytes(bytes(src.byte() for _ in range(1 + src.byte() % 9)), "big", signed=True)
    if kind == 3:
        value = struct.unpack(">d", bytes(src.byte() for _ in range(8)))[0]
        return value if math.isfinite(value) else 0.5
    if kind in (4, 7):
        return src.string()
    if kind == 5:
        return [_json_value(src, depth + 1) for _ in range(src.byte() % 5)]
    return {src.string(): _json_value(src, depth + 1) for _ in range(src.byte() % 5)}


def hostile_text(data: bytes) -> str:
    """Turn one byte string into a reply: decoded bytes, JSON (whole or cut), or random Unicode."""
    if not data:
        return ""
    kind, rest = data[0] % 6, data[1:]
    if kind == 0:
        return rest.decode("utf-8", errors="surrogateescape")  # invalid bytes become lone surrogates
    if kind == 1:
        return rest.decode("utf-8", errors="replace")
    if kind == 2:
        return rest.decode("latin-1")
    src = _Source(rest)
    if kind == 3:
        return "".join(src.char() for _ in range(len(rest) // 2))
    if kind == 4:
        return "".join(src.string() for _ in range(len(rest) // 3))
    text = json.dumps(_json_value(src), ensure_ascii=bool(data[0] & 0x80))
    cut = src.byte() % 4
    return text if cut == 0 else text[: len(text) * cut // 4]  # JSON cut off, as by a token limit


def check(reply: object, max_calls: int) -> None:
    assert isinstance(reply, ParsedReply)
    assert len(reply.tool_calls) <= max_calls and len(reply.problems) <= MAX_PROBLEMS
    assert isinstance(reply.content, str) and isinstance(reply.reasoning, str)
    for call in reply.tool_calls:
        assert isinstance(call.name, str) and isinstance(call.arguments, dict)
        assert call.arguments_error is None or call.arguments == {}


@FUZZ
@given(data=st.binary(max_size=256))
def test_every_parser_reads_any_text(data: bytes) -> None:
    text = hostile_text(data)
    max_calls = MAX_CALLS[data[-1] % len(MAX_CALLS)] if data else 64
    finish = "length" if data and data[0] & 0x20 else "stop"
    closed = bool(data) and data[0] & 0x40  # nous/native: close the call after the input, or leave it open
    for name in FORMAT_NAMES:
        fmt = get_format(name, max_calls=max_calls)
        opened = OPENINGS[name] + text + ("}\n</tool_call>" if name in ("nous", "native") and closed else "")
        for reply_text in (text, opened):  # parse_completion calls parse, then marks a cut call
            check(fmt.parse_completion(Completion(text=reply_text, finish_reason=finish)), max_calls)

    arguments, error = parse_arguments(text)
    assert isinstance(arguments, dict) and (error is None or (arguments == {} and isinstance(error, str)))
    _, error = load_json(text)
    assert error is None or isinstance(error, str)

    server = tuple(
        ToolCall(name=text[:k], raw_arguments=text[k:], arguments_error="bad JSON" if k % 2 else None)
        for k in range(0, min(len(text), 6))
    )
    fmt = NativeFormat(max_calls=max_calls)
    reply = fmt.parse_completion(Completion(text=text, tool_calls=server, finish_reason="tool_calls"))
    check(reply, max_calls)
    assert [c.id for c in reply.tool_calls] == [c.id for c in server[:max_calls]]
