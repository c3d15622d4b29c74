"""`render_calls`: the reply text a model would write for given calls, read back by the same format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.llm.formats import NativeFormat, NousFormat, QwenFormat, ReActFormat, TextFormat, get_format
from qwenkit.types import ToolCall

TEXT_FORMATS = ("react", "qwen", "nous")

# Strings the parsers act on wherever they appear; arguments holding them must still read back exactly.
MARKER_STRINGS = [
    "<tool_call>", "</tool_call>", "<tool_response>", "<think>", "</think>", "<code>", "</code>", "✿", "✿FUNCTION✿",
    "✿ARGS✿: ", "✿RESULT✿", "✿RETURN✿", "\nObservation: 3", "Action Input:", "\nFinal Answer: x", "```py\n", "'",
    '"', "\\", "\n", "数学", "😀", "a < b", "}", "{",
]  # fmt: skip

NAMES = st.builds(
    str.__add__, st.sampled_from("abcxyz_ABC"), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", max_size=20)
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(MARKER_STRINGS)
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=6,
)
ARGUMENTS = st.dictionaries(st.text(max_size=10) | st.sampled_from(MARKER_STRINGS), VALUES, max_size=5)
CALLS = st.lists(st.builds(ToolCall, name=NAMES, arguments=ARGUMENTS), min_size=1, max_size=4)


def _read_back(fmt: TextFormat, calls: list[ToolCall]) -> list[tuple[str, dict[str, Any], str | None]]:
    reply = fmt.parse(fmt.render_calls(calls))
    assert reply.problems == [], reply.problems
    return [(c.name, c.arguments, c.arguments_error) for c in reply.tool_calls]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=CALLS, name=st.sampled_from(TEXT_FORMATS))
def test_calls_read_back_the_same(calls: list[ToolCall], name: str) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, TextFormat)
    assert _read_back(fmt, calls) == [(c.name, c.arguments, None) for c in calls]


@pytest.mark.parametrize("name", TEXT_FORMATS)
def test_the_text_is_what_the_model_is_told_to_write(name: str) -> None:
    calls = [
        ToolCall(name="math.factorial", arguments={"n": 5}),
        ToolCall(name="get_weather", arguments={"city": "巴黎"}),
    ]
    expected = {
        "react": 'Action: math.factorial\nAction Input: {"n": 5}\nAction: get_weather\nAction Input: {"city": "巴黎"}',
        "qwen": '✿FUNCTION✿: math.factorial\n✿ARGS✿: {"n": 5}\n✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "巴黎"}',
        "nous": '<tool_call>\n{"name": "math.factorial", "arguments": {"n": 5}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "巴黎"}}\n</tool_call>',
    }[name]
    fmt = get_format(name)
    assert isinstance(fmt, TextFormat)
    assert fmt.render_calls(calls) == expected
    assert fmt.render_calls([]) == ""


@pytest.mark.parametrize("name", TEXT_FORMATS)
def test_markers_inside_arguments_are_escaped(name: str) -> None:
    arguments = {"code": "print('</tool_call> <think> ✿RESULT✿')\nprint(1 < 2)"}
    fmt = get_format(name)
    assert isinstance(fmt, TextFormat)
    text = fmt.render_calls([ToolCall(name="python", arguments=arguments)])
    written = text[text.index("{") : text.rindex("}") + 1]
    assert json.loads(written) == (arguments if name != "nous" else {"name": "python", "arguments": arguments})
    own = {"react": ["<think>"], "qwen": ["<think>", "✿"], "nous": ["<think>", "</tool_call>"]}[name]
    assert not [marker for marker in own if marker in written]
    assert _read_back(fmt, [ToolCall(name="python", arguments=arguments)]) == [("python", arguments, None)]


@pytest.mark.parametrize("name", TEXT_FORMATS)
def test_a_call_with_unreadable_arguments_is_written_as_the_model_wrote_it(name: str) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, TextFormat)
    broken = ToolCall(name="f", raw_arguments="Paris", arguments_error="expected a JSON object, got plain text")
    [(call_name, arguments, error)] = _read_back_allowing_problems(fmt, [broken])
    assert (call_name, arguments) == ("f", {}) and error is not None


def _read_back_allowing_problems(fmt: TextFormat, calls: list[ToolCall]) -> list[tuple[str, dict[str, Any], Any]]:
    return [(c.name, c.arguments, c.arguments_error) for c in fmt.parse(fmt.render_calls(calls)).tool_calls]


def test_qwen_without_parallel_calls_reads_back_the_first() -> None:
    calls = [ToolCall(name="a", arguments={}), ToolCall(name="b", arguments={"x": 1})]
    reply = QwenFormat(parallel=False).parse(QwenFormat(parallel=False).render_calls(calls))
    assert [c.name for c in reply.tool_calls] == ["a"] and reply.problems


def test_only_text_formats_write_calls_as_text() -> None:
    for fmt in (ReActFormat(), QwenFormat(), NousFormat()):
        assert isinstance(fmt, TextFormat) and callable(fmt.render_calls)
    native = NativeFormat()
    assert not isinstance(native, TextFormat) and not hasattr(native, "render_calls")
