"""Forgiving argument parsing shared by the prompt formats."""

from __future__ import annotations

import pytest

from qwenkit.llm.formats import parse_arguments
from qwenkit.llm.formats._json import is_code_tool, load_json
from qwenkit.llm.formats.base import ParsedReply, mark_truncated, split_think
from qwenkit.types import ToolCall, ToolSpec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"n": 5}', {"n": 5}),
        ('  {"n": 5}\n', {"n": 5}),
        ("{'city': 'Paris'}", {"city": "Paris"}),  # single quotes (json5)
        ('{"city": "Paris",}', {"city": "Paris"}),  # trailing comma (json5)
        ("{city: 'Paris'}", {"city": "Paris"}),  # unquoted key (json5)
        ('{"city": "Paris"', {"city": "Paris"}),  # missing closing brace (json_repair)
        ('{"a": {"b": [1, 2', {"a": {"b": [1, 2]}}),  # several missing closers
        ('{"n": 5} <!-- a comment -->', {"n": 5}),  # stray text after the object
        ('{"n": 5}\nThought: done', {"n": 5}),
        ('```json\n{"n": 5}\n```', {"n": 5}),  # fenced JSON
        ('```\n{"n": 5}\n```', {"n": 5}),  # bare fence holding JSON
        ("```json\n{'n': 5,}\n```", {"n": 5}),
        ("", {}),
        ("   ", {}),
        ('{"text": "数学 ✿ <tool_call>"}', {"text": "数学 ✿ <tool_call>"}),
    ],
)
def test_objects_are_read(text: str, expected: dict[str, object]) -> None:
    assert parse_arguments(text) == (expected, None)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```py\nprint(1)\n```", "print(1)"),
        ("```python\nimport math\nprint(math.factorial(5))\n```", "import math\nprint(math.factorial(5))"),
        ("```\nx = {1: 2}\nprint(x)\n```", "x = {1: 2}\nprint(x)"),  # bare fence, not JSON
        ("```python\nprint(1)", "print(1)"),  # unclosed fence (cut off)
        ("Here is the code:\n```py\nprint(2)\n```", "print(2)"),
    ],
)
def test_fenced_code_becomes_the_code_argument(text: str, code: str) -> None:
    assert parse_arguments(text) == ({"code": code}, None)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Paris", "plain text"),
        ("[1, 2]", "a list"),
        ("5", "a number"),
        ('"Paris"', "a string"),
        ("null", "null"),
        ("true", "a boolean"),
        ("```bash\nls\n```", "```bash"),
        ("```json\n[1]\n```", "a list"),
        ("{garbage", "a list"),  # json_repair makes a list of it: still not an object
    ],
)
def test_non_objects_are_errors(text: str, fragment: str) -> None:
    arguments, error = parse_arguments(text)
    assert arguments == {}
    assert error is not None and fragment in error


def test_deep_nesting_does_not_raise() -> None:
    arguments, error = parse_arguments("[" * 100_000)
    assert arguments == {} and error is not None
    value, error = load_json("{" * 50_000)
    assert error is None or value is None


def test_split_think() -> None:
    assert split_think("<think>\nhmm\n</think>\n\nHi") == ("hmm", "\n\nHi", [])
    assert split_think("hmm</think>Hi") == ("hmm", "Hi", [])  # template opened the block
    reasoning, rest, problems = split_think("<think>still thinking")
    assert (reasoning, rest) == ("still thinking", "") and problems
    assert split_think("no thinking") == ("", "no thinking", [])


def test_is_code_tool() -> None:
    code = ToolSpec(name="python", parameters={"type": "object", "properties": {"code": {"type": "string"}}})
    other = ToolSpec(name="python", parameters={"type": "object", "properties": {"code": {"type": "integer"}}})
    two = ToolSpec(name="x", parameters={"type": "object", "properties": {"code": {}, "lang": {}}})
    assert is_code_tool(code)
    assert not is_code_tool(other) and not is_code_tool(two) and not is_code_tool(ToolSpec(name="y"))


def test_mark_truncated_only_touches_an_incomplete_last_call() -> None:
    calls = [ToolCall(name="a", arguments={"x": 1}), ToolCall(name="b", arguments={"code": "print("})]
    reply = ParsedReply(tool_calls=calls)
    assert mark_truncated(reply, "stop", last_call_complete=False) is reply
    assert mark_truncated(reply, "length", last_call_complete=True) is reply
    cut = mark_truncated(reply, "length", last_call_complete=False)
    assert cut.tool_calls[0] == calls[0]
    assert cut.tool_calls[1].arguments == {} and cut.tool_calls[1].arguments_error
    assert cut.tool_calls[1].id == calls[1].id and cut.problems


CODE = "\nimport numpy as np\n\nprint(1.20 / 3 * 45)\n"
TRIPLE = '{\n  "name": "code_interpreter",\n  "arguments": {\n    "code": """' + CODE + '"""\n  }\n}'


def test_python_triple_quoted_code_is_read_as_a_string() -> None:
    # Qwen2.5-Coder-1.5B wrote exactly this (in a ```json fence) for the code interpreter.
    value, error = load_json(TRIPLE)
    assert error is None
    assert value == {"name": "code_interpreter", "arguments": {"code": CODE}}
    args, error = parse_arguments('{"code": """print("a\\nb")""", "x": 1}')
    assert error is None and args == {"code": 'print("a\\nb")', "x": 1}  # the body as written, escapes kept


def test_an_unclosed_triple_quoted_string_is_an_error_not_empty_code() -> None:
    # A reply cut off inside the code: repairs would close the string empty, and the tool would run nothing.
    args, error = parse_arguments('{"code": """import numpy as np\nprint(np.pi')
    assert args == {} and error is not None and 'opened with """ is never closed' in error
    value, error = load_json(TRIPLE[: TRIPLE.index("print")])
    assert value is None and error is not None and "never closed" in error


def test_a_nous_reply_with_triple_quoted_code_makes_one_call() -> None:
    from qwenkit.llm.formats import get_format

    parsed = get_format("nous").parse(f"```json\n{TRIPLE}\n```")
    assert [c.name for c in parsed.tool_calls] == ["code_interpreter"]
    assert parsed.tool_calls[0].arguments == {"code": CODE}
