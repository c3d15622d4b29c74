"""The pythonic format: BFCL prompt mode's Python call lists, read with `ast` (literals only), never executed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qwenkit.llm.formats.pythonic import SYSTEM_PROMPT, PythonicFormat, decode, system_prompt, write_calls
from qwenkit.types import (
    AssistantMessage,
    Completion,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

SPEC = ToolSpec(name="math.factorial", description="n!", parameters={"type": "object", "properties": {
    "n": {"type": "integer"}}, "required": ["n"]})


def _calls(text: str, strict: bool = False) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for c in PythonicFormat(strict=strict).parse(text).tool_calls]


@pytest.mark.parametrize(("text", "expected"), [
    ('[math.factorial(n=5)]', [("math.factorial", {"n": 5})]),
    ('get_weather(city="Paris")', [("get_weather", {"city": "Paris"})]),
    ('[f(a=[1, 2], b={"k": True}, c=None, d=-1.5, e=(1, 2))]',
     [("f", {"a": [1, 2], "b": {"k": True}, "c": None, "d": -1.5, "e": [1, 2]})]),
    ('[f(a=1), g(b="x")]', [("f", {"a": 1}), ("g", {"b": "x"})]),
    ('[f(a=x)]', [("f", {"a": "x"})]),  # a bare name reads as its text, as BFCL reads it
    ('[f(a=g(1))]', [("f", {"a": "g(1)"})]),
    ('[f(a=g(b=1))]', [("f", {"a": {"g": {"b": 1}}})]),
    ('[f(a=3*4)]', [("f", {"a": 12})]),
    ("`[f(a=1)]`\n", [("f", {"a": 1})]),
    ("", []),
])
def test_bfcl_decoding(text: str, expected: list[tuple[str, dict]]) -> None:
    assert _calls(text, strict=True) == expected
    assert _calls(text) == expected


@pytest.mark.parametrize("text", [
    "```python\n[f(a=1)]\n```",
    "Sure, here it is: [f(a=1)]",
    "<TOOLCALL>[f(a=1)]</TOOLCALL>",
])
def test_forgiving_mode_finds_the_list_strict_mode_does_not(text: str) -> None:
    assert _calls(text) == [("f", {"a": 1})]
    assert _calls(text, strict=True) == []


@pytest.mark.parametrize("text", ["The answer is 42.", "I cannot help with that.", "[1, 2, 3]", "[f(a=1), 2]"])
def test_prose_and_non_calls_are_an_answer(text: str) -> None:
    reply = PythonicFormat().parse(text)
    assert reply.tool_calls == [] and reply.content == text.strip()


def test_model_text_is_never_run(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    text = f'[f(a=__import__("os").system("touch {target}")), g(b=open("{target}", "w"))]'
    calls = _calls(text)
    assert not target.exists()
    assert [n for n, _ in calls] == ["f", "g"]
    assert all(isinstance(v, str) for _, args in calls for v in args.values())
    assert _calls('[f(a=x+1)]') == []  # arithmetic on a name: not a literal, nothing is evaluated


def test_positional_arguments_are_dropped_with_a_note() -> None:
    reply = PythonicFormat().parse("[f(1, a=2)]")
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("f", {"a": 2})]
    assert "positional" in reply.problems[0]


def test_hostile_replies_do_not_raise_or_explode() -> None:
    fmt = PythonicFormat(max_calls=4)
    assert fmt.parse("[" * 100_000).tool_calls == []
    assert fmt.parse("[f(a=" + "[" * 500 + "]" * 500 + ")]").tool_calls == []
    assert fmt.parse("x" * 300_000).problems
    many = fmt.parse("[" + ", ".join(f"f(a={i})" for i in range(100)) + "]")
    assert len(many.tool_calls) == 4 and any("max_calls" in p for p in many.problems)
    assert fmt.parse("[f(a=1e999999)]").tool_calls[0].arguments["a"] == float("inf")
    assert fmt.parse("[f(a=1/0)]").tool_calls == []


def test_calls_round_trip() -> None:
    calls = [("math.factorial", {"n": 5}), ("g", {"s": "it's \"quoted\"\n", "b": False, "l": [None, 1.5],
                                                  "d": {"k": [1]}})]
    text = write_calls(calls)
    assert _calls(text, strict=True) == calls
    fmt = PythonicFormat()
    assert fmt.render_calls([ToolCall(name=n, arguments=a) for n, a in calls]) == text


@pytest.mark.parametrize("value", ["</think>", "<think>x</think>", "\\</think>", "a<think>"])
def test_think_tags_inside_values_read_back(value: str) -> None:
    fmt = PythonicFormat()
    reply = fmt.parse(fmt.render_calls([ToolCall(name="f", arguments={"s": value, "d": {"k": [value]}})]))
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("f", {"s": value, "d": {"k": [value]}})]
    assert reply.reasoning == "" and reply.problems == []


def test_render_puts_bfcl_prompt_first_and_tool_results_in_one_user_turn() -> None:
    fmt = PythonicFormat()
    call = ToolCall(id="c1", name="math.factorial", arguments={"n": 5})
    rendered = fmt.render([
        SystemMessage(content="Be brief."), UserMessage(content="5!?"),
        AssistantMessage(tool_calls=(call, ToolCall(id="c2", name="math.factorial", arguments={"n": 3}))),
        ToolMessage(tool_call_id="c1", name="math.factorial", content="120"),
        ToolMessage(tool_call_id="c2", name="math.factorial", content="6"),
    ], [SPEC])
    system, user, assistant, results = rendered.messages
    assert isinstance(system, SystemMessage) and system.content.endswith("\n\nBe brief.")
    assert system.content.startswith("You are an expert in composing functions.You are given a question")
    assert '"name": "math.factorial"' in system.content
    assert user.content == "5!?"
    assert assistant.content == "[math.factorial(n=5), math.factorial(n=3)]"
    assert results == UserMessage(
        content="<tool_response>\n120\n</tool_response>\n<tool_response>\n6\n</tool_response>")
    assert PythonicFormat(tools_in_prompt=False).render([UserMessage(content="hi")], [SPEC]).messages == [
        UserMessage(content="hi")]


def test_a_reply_cut_by_the_token_limit_does_not_run_its_last_call() -> None:
    reply = PythonicFormat().parse_completion(Completion(text="[f(a=1), g(b=2)]", finish_reason="length"))
    assert reply.tool_calls[-1].arguments_error is not None


def test_decode_rejects_what_bfcl_rejects() -> None:
    with pytest.raises(SyntaxError):
        decode("[f(a=1]")
    with pytest.raises(ValueError, match="not a call"):
        decode("[f(a=1), 3]")


def test_system_prompt_is_bfcls_own() -> None:
    """Built from the wheel's own template pieces when the fetched bfcl-eval package is here."""
    from qwenkit.bench.bfcl.data import cache_dir

    root = Path(os.environ.get("QWENKIT_BFCL_FULL_DIR") or cache_dir())
    if not (root / "package" / "bfcl_eval").is_dir():
        pytest.skip("no fetched bfcl-eval package: run 'qwenkit bench fetch bfcl'")
    import json

    from qwenkit.bench.bfcl.package import load

    p = load(root, "constants.default_prompts")
    style = p.PROMPT_STYLE_TEMPLATES["classic"]
    docs = [{"name": "f", "description": "d", "parameters": {"type": "dict", "properties": {}}}]
    official = p.PROMPT_TEMPLATE_MAPPING["plaintext"].format(
        persona=style["persona"], task=style["task"],
        tool_call_format=style["tool_call_no_tag"].format(output_format=p.OUTPUT_FORMAT_MAPPING["python"],
                                                          param_types=p.PARAM_TYPE_MAPPING["python"]),
        multiturn_behavior=style["multiturn_behavior"],
        available_tools=style["available_tools"].format(format="json", functions=json.dumps(docs, indent=4)))
    assert system_prompt(docs) == official
    assert "{functions}" in SYSTEM_PROMPT
