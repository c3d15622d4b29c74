"""Hostile replies: floods of calls, megabyte arguments, scanners that must not backtrack.

No test here is timed (speed is measured by ``python -m qwenkit.bench.perf_parse``); each checks what a
hostile reply becomes. Before the parsers were made linear, the inputs below took from seconds to
minutes each, so a regression shows as a suite that suddenly crawls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.bench.perf_parse import hostile_reply
from qwenkit.llm.formats import (
    DEFAULT_MAX_CALLS,
    NativeFormat,
    ParsedReply,
    RenderedPrompt,
    TextFormat,
    get_format,
    parse_arguments,
)
from qwenkit.llm.formats._json import MAX_JSON5_CHARS, MAX_REPAIR_CHARS, RepairBudget, first_fence, load_json
from qwenkit.llm.formats.base import MAX_PROBLEMS
from qwenkit.llm.formats.nous import _NAME, _fence_blocks
from qwenkit.llm.formats.react import _MARKER, _PARTIAL_OBSERVATION
from qwenkit.types import Completion, Message, SystemMessage, ToolCall, ToolSpec, UserMessage

TINY_CALL = {
    "react": 'Action: f\nAction Input: {"a": 1}\n',
    "qwen": '✿FUNCTION✿: f\n✿ARGS✿: {"a": 1}\n',
    "nous": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n',
    "native": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n',
    "qwen3_coder": "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>\n",
}
CONCAT_FORMATS = tuple(TINY_CALL)
"""Formats whose calls are written one after another (pythonic writes one Python list; its own tests
cover its max_calls)."""
JSON_FORMATS = ("react", "qwen", "nous", "native")
"""Formats whose arguments are JSON text (the hostile JSON shapes); qwen3_coder's values are raw text,
and its hostile shapes are in test_qwen3_coder_format.py."""
KB = 1000

# ---------------------------------------------------------------------------------------- max_calls


@pytest.mark.parametrize("name", CONCAT_FORMATS)
def test_200k_tiny_calls_yield_max_calls_and_a_problem(name: str) -> None:
    reply = get_format(name).parse(TINY_CALL[name] * 200_000)
    assert len(reply.tool_calls) == DEFAULT_MAX_CALLS == 64
    a = "1" if name == "qwen3_coder" else 1  # qwen3_coder: a parameter with no schema stays text, as in vLLM
    assert all((c.name, c.arguments, c.arguments_error) == ("f", {"a": a}, None) for c in reply.tool_calls)
    assert any("200000 calls" in p and "kept the first 64" in p for p in reply.problems), reply.problems


@pytest.mark.parametrize("name", CONCAT_FORMATS)
def test_max_calls_is_an_option_of_every_format(name: str) -> None:
    reply = get_format(name, max_calls=3).parse_completion(Completion(text=TINY_CALL[name] * 10))
    assert len(reply.tool_calls) == 3 and any("10 calls" in p for p in reply.problems)
    few = get_format(name, max_calls=3).parse(TINY_CALL[name] * 3)
    assert len(few.tool_calls) == 3 and few.problems == []
    for bad in (0, -1, True, 2.5, "64"):
        with pytest.raises(ValueError, match="max_calls"):
            get_format(name, max_calls=bad)


def test_native_caps_the_servers_calls() -> None:
    calls = (ToolCall(name="f", raw_arguments="{'a': 1,", arguments_error="bad JSON"),) * 200_000
    reply = NativeFormat().parse_completion(Completion(tool_calls=calls, finish_reason="tool_calls"))
    assert [c.id for c in reply.tool_calls] == [calls[0].id] * 64
    assert all(c.arguments == {"a": 1} for c in reply.tool_calls)
    assert any("200000 calls" in p for p in reply.problems)
    small = NativeFormat(max_calls=2).parse_completion(Completion(tool_calls=calls[:2]))
    assert len(small.tool_calls) == 2 and small.problems == []


def test_qwen_without_parallel_calls_still_says_how_many_there_were() -> None:
    reply = get_format("qwen", parallel=False).parse(TINY_CALL["qwen"] * 1000)
    assert len(reply.tool_calls) == 1 and reply.problems == ["parallel calls are off; kept the first of 1000 calls"]


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("nous", "<tool_call></tool_call>"),  # one "an empty <tool_call> was answered with an error" each
        ("nous", "<tool_call>x"),  # not closed, not readable
        ("qwen", "✿FUNCTION✿: \n"),  # empty
        ("qwen", "✿FUNCTION✿: f\n"),  # no ✿ARGS✿
        ("react", "Action: f\n"),  # no Action Input
    ],
)
def test_problems_are_bounded(name: str, unit: str) -> None:
    reply = get_format(name).parse(unit * 50_000)
    assert 1 < len(reply.problems) <= MAX_PROBLEMS and "more problems" in reply.problems[-1]


# ----------------------------------------------------------------------------- megabyte replies


@pytest.mark.parametrize("name", JSON_FORMATS)
def test_hostile_shapes_read_as_clear_errors(name: str) -> None:
    fmt = get_format(name)
    size = 1000 * KB

    [call] = fmt.parse(hostile_reply(name, "unterminated_name", size)).tool_calls
    assert call.arguments == {} and call.arguments_error

    [call] = fmt.parse(hostile_reply(name, "deep_brackets", size)).tool_calls
    assert call.arguments == {} and call.arguments_error

    [call] = fmt.parse(hostile_reply(name, "giant_argument", size)).tool_calls
    assert call.arguments == {} and call.arguments_error and "too long to repair" in call.arguments_error

    blanks = fmt.parse(hostile_reply(name, "fence_blanks", size))
    if name in ("react", "qwen"):  # a fenced code argument: the code is the blanks and the last word
        [call] = blanks.tool_calls
        assert call.arguments["code"].strip() == "x" and len(call.arguments["code"]) > size - 100
    else:  # a fence with no newline after its blanks is not a fenced block: plain text
        assert blanks.tool_calls == [] and blanks.content.endswith("x")

    random_text = fmt.parse(hostile_reply(name, "random_text", size))
    assert isinstance(random_text, ParsedReply) and len(random_text.tool_calls) <= 64


def test_a_giant_argument_does_not_use_up_the_repair_budget() -> None:
    giant = "{'code': '" + "x" * 50_000 + "'}"
    text = f"✿FUNCTION✿: f\n✿ARGS✿: {giant}\n✿FUNCTION✿: g\n✿ARGS✿: {{'a': 1,}}"
    first, second = get_format("qwen").parse(text).tool_calls
    assert first.arguments == {} and "too long to repair" in (first.arguments_error or "")
    assert (second.name, second.arguments, second.arguments_error) == ("g", {"a": 1}, None)


def test_the_repair_budget_is_shared_by_the_calls_of_one_reply() -> None:
    medium = "{'a': '" + "x" * 3000 + "',}"  # 3,010 characters that only json5 or json_repair can read
    text = "\n".join(f'<tool_call>\n{{"name": "f", "arguments": "{medium}"}}\n</tool_call>' for _ in range(4))
    calls = get_format("nous").parse(text).tool_calls
    # json5's 8,000 characters read the first two, json_repair's 4,000 the third; the fourth is refused.
    assert (MAX_JSON5_CHARS, MAX_REPAIR_CHARS) == (8_000, 4_000)
    assert [c.arguments for c in calls[:3]] == [{"a": "x" * 3000}] * 3
    assert calls[3].arguments == {} and "too long to repair" in (calls[3].arguments_error or "")
    # Each call of `parse_arguments` without a budget gets a fresh one.
    assert all(parse_arguments(medium) == ({"a": "x" * 3000}, None) for _ in range(4))


def test_budget_accounting() -> None:
    budget = RepairBudget(json5_chars=10, repair_chars=5)
    assert budget.take_json5("x" * 6) and not budget.take_json5("x" * 6) and budget.take_json5("x" * 4)
    assert not budget.take_repair("x" * 6) and budget.take_repair("x" * 5) and not budget.take_repair("x")
    value, error = load_json("{'a': 1}", RepairBudget(json5_chars=0, repair_chars=0))
    assert value is None and error is not None and "too long to repair" in error
    assert load_json('{"a": 1} trailing words', RepairBudget(0, 0)) == ({"a": 1}, None)  # C path, no budget


# ------------------------------------------- the linear scanners match the expressions they replaced

SCANNER = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PIECES = ["```", "`", " ", "\t", "\n", "py", "json", "json5", "jsonx", "tool_call", "javascript", "x", "{", "}", "\\"]
OLD_JSON_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\n?(.*?)(?:\n?[ \t]*```|\Z)", re.DOTALL)
OLD_NOUS_FENCE = re.compile(r"```[ \t]*(?:json5?|tool_call|javascript)?[ \t]*\n(.*?)```", re.DOTALL)
OLD_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
OLD_MARKER = re.compile(
    r"^[ \t]*(thought|action[ \t]+input|action|observation|final[ \t]+answer)[ \t]*[:：]", re.MULTILINE | re.IGNORECASE
)
OLD_PARTIAL = re.compile(
    r"\n[ \t]*(?:O|Ob|Obs|Obse|Obser|Observ|Observa|Observat|Observati|Observatio|Observation)[ \t]*\Z"
)


def texts(pieces: Sequence[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(list(pieces)), max_size=16).map("".join)


@SCANNER
@given(text=texts(PIECES))
def test_first_fence_matches_the_old_expression(text: str) -> None:
    old = OLD_JSON_FENCE.search(text)
    assert first_fence(text) == (None if old is None else (old.group(1), old.group(2)))


@SCANNER
@given(text=texts(PIECES))
def test_nous_fence_blocks_match_the_old_expression(text: str) -> None:
    assert _fence_blocks(text) == [(m.start(), m.end(), m.group(1)) for m in OLD_NOUS_FENCE.finditer(text)]


@SCANNER
@given(text=texts(['"name"', ":", " ", "\n", '"', "\\", "a", '\\"', "\\\n"]))
def test_nous_name_pattern_matches_the_old_expression(text: str) -> None:
    old, new = OLD_NAME.search(text), _NAME.search(text)
    assert (old and (old.span(), old.group(1))) == (new and (new.span(), new.group(1)))


@SCANNER
@given(text=texts(["Thought", "Action", "Input", "Final", "Answer", "Observation", "Obs", "O", " ", "\t", "\n", ":"]))
def test_react_patterns_match_the_old_expressions(text: str) -> None:
    assert [m.span() for m in _MARKER.finditer(text)] == [m.span() for m in OLD_MARKER.finditer(text)]
    assert _PARTIAL_OBSERVATION.sub("", text) == OLD_PARTIAL.sub("", text)


# ----------------------------------------------------------------------------------- the base class


class _Broken(TextFormat):
    name = "broken"

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> RenderedPrompt:
        return RenderedPrompt(messages=self._add_system_text(list(messages), "TOOLS"))

    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        return "".join(c.name for c in calls)

    def _parse(self, text: str) -> ParsedReply:
        if text == "boom":
            raise RecursionError("x" * 100_000)
        return ParsedReply(content=text, tool_calls=[ToolCall(name="f") for _ in range(len(text))])


def test_the_base_parse_never_raises_and_caps_calls() -> None:
    fmt = _Broken(max_calls=2)
    reply = fmt.parse("boom")
    assert reply.content == "boom" and reply.tool_calls == []
    assert len(reply.problems) == 1 and reply.problems[0].startswith("could not parse the reply (RecursionError")
    assert len(reply.problems[0]) < 300
    assert fmt.parse(None).content == ""  # type: ignore[arg-type]
    capped = fmt.parse("abcde")
    assert len(capped.tool_calls) == 2 and capped.problems == [
        "the reply had 5 calls; kept the first 2 (max_calls) and dropped the rest"
    ]
    cut = fmt.parse_completion(Completion(text="ab", finish_reason="length"))
    assert cut.tool_calls[-1].arguments_error and cut.tool_calls[0].arguments_error is None


def test_the_base_merges_the_system_text_once() -> None:
    fmt = _Broken()
    with_system = fmt.render([SystemMessage(content="Be brief."), UserMessage(content="Q")], []).messages
    assert [(m.role, m.content) for m in with_system] == [("system", "Be brief.\n\nTOOLS"), ("user", "Q")]
    without = fmt.render([UserMessage(content="Q")], []).messages
    assert [(m.role, m.content) for m in without] == [("system", "TOOLS"), ("user", "Q")]
