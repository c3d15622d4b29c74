"""Nous/Hermes format: parsing ``<tool_call>`` blocks and rendering results as user turns."""

from __future__ import annotations

import json

import pytest

from qwenkit.llm.formats import NousFormat, ParsedReply
from qwenkit.types import (
    AssistantMessage,
    Completion,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

FMT = NousFormat()


def block(name: str, arguments: object) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def calls(reply: ParsedReply) -> list[tuple[str, dict[str, object], str | None]]:
    return [(c.name, c.arguments, c.arguments_error) for c in reply.tool_calls]


def test_single_call() -> None:
    reply = FMT.parse(block("math.factorial", {"n": 5}))
    assert calls(reply) == [("math.factorial", {"n": 5}, None)]
    assert (reply.content, reply.problems) == ("", [])


def test_parallel_calls() -> None:
    reply = FMT.parse(block("math.factorial", {"n": 5}) + "\n" + block("get_weather", {"city": "Paris"}))
    assert calls(reply) == [("math.factorial", {"n": 5}, None), ("get_weather", {"city": "Paris"}, None)]


def test_final_answer() -> None:
    reply = FMT.parse("5! is 120 and it is sunny in Paris.")
    assert (reply.content, reply.tool_calls, reply.problems) == ("5! is 120 and it is sunny in Paris.", [], [])


def test_text_before_a_call_is_content() -> None:
    reply = FMT.parse("Let me check.\n" + block("get_weather", {"city": "Paris"}))
    assert reply.content == "Let me check."
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None)]


@pytest.mark.parametrize(
    "body",
    [
        "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",  # single quotes
        '{"name": "get_weather", "arguments": {"city": "Paris",},}',  # trailing commas
        '{"name": "get_weather", "arguments": {"city": "Paris"}',  # missing closing brace
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',  # arguments encoded twice
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    ],
)
def test_broken_json_is_repaired(body: str) -> None:
    reply = FMT.parse(f"<tool_call>\n{body}\n</tool_call>")
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None)]


def test_name_is_picked_out_of_hopeless_json() -> None:
    reply = FMT.parse('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}} }} ]]\n</tool_call>')
    assert [c.name for c in reply.tool_calls] == ["get_weather"]


def test_unreadable_call_becomes_an_error_call() -> None:
    reply = FMT.parse("<tool_call>\nweather in Paris please\n</tool_call>")
    [call] = reply.tool_calls
    assert call.name == "" and call.arguments_error and reply.problems


@pytest.mark.parametrize("ending", ["\n</tool_call>", "\n</tool_", "\n", ""])
def test_unclosed_last_call(ending: str) -> None:
    reply = FMT.parse('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' + ending)
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None)]


def test_hallucinated_tool_response_is_cut() -> None:
    reply = FMT.parse(block("f", {}) + "\n<tool_response>\n3\n</tool_response>\nIt is 3.")
    assert calls(reply) == [("f", {}, None)] and reply.content == "" and reply.problems


def test_code_mode_and_fenced_code() -> None:
    code_mode = FMT.parse(
        '<tool_call>\n{"name": "python", "arguments": {"code": ""}}\n<code>\nprint(1)\n</code>\n</tool_call>'
    )
    assert calls(code_mode) == [("python", {"code": "print(1)"}, None)]
    fenced = FMT.parse('<tool_call>\n{"name": "python", "arguments": "```py\\nprint(1)\\n```"}\n</tool_call>')
    assert calls(fenced) == [("python", {"code": "print(1)"}, None)]


def test_unknown_tool_and_bad_arguments_pass_through() -> None:
    reply = FMT.parse(block("nope", [1, 2]))
    [call] = reply.tool_calls
    assert call.name == "nope" and call.arguments == {} and call.arguments_error


def test_think_block() -> None:
    reply = FMT.parse("<think>\nI should call it.\n</think>\n\n" + block("f", {"a": 1}))
    assert reply.reasoning == "I should call it." and calls(reply) == [("f", {"a": 1}, None)]


def test_dotted_names_round_trip() -> None:
    call = ToolCall(name="math.factorial", arguments={"n": 5}, raw_arguments='{"n": 5}')
    rendered = FMT.render(
        [UserMessage(content="5!?"), AssistantMessage(content="Computing.", tool_calls=(call,))],
        [ToolSpec(name="math.factorial")],
    )
    reply = FMT.parse(rendered.messages[-1].content)
    assert calls(reply) == [("math.factorial", {"n": 5}, None)] and reply.content == "Computing."


def test_results_go_back_as_one_user_turn_per_step() -> None:
    a = ToolCall(id="a", name="f", arguments={"x": 1})
    b = ToolCall(id="b", name="g", arguments={}, raw_arguments="oops", arguments_error="plain text")
    rendered = FMT.render(
        [
            UserMessage(content="Q"),
            AssistantMessage(content="Both.", reasoning="think", tool_calls=(a, b)),
            ToolMessage(tool_call_id="a", name="f", content="A"),
            ToolMessage(tool_call_id="b", name="g", content="B"),
            AssistantMessage(content="Done."),
        ],
        [ToolSpec(name="f"), ToolSpec(name="g")],
    )
    assert [(m.role, m.content) for m in rendered.messages[1:]] == [
        ("user", "Q"),
        (
            "assistant",
            '<think>\nthink\n</think>\n\nBoth.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n'
            '<tool_call>\n{"name": "g", "arguments": "oops"}\n</tool_call>',
        ),
        ("user", "<tool_response>\nA\n</tool_response>\n<tool_response>\nB\n</tool_response>"),
        ("assistant", "Done."),
    ]
    assert all(not getattr(m, "reasoning", "") for m in rendered.messages)  # written once, in the text
    assert not rendered.continue_final and rendered.stop == []


def test_system_text_without_user_system() -> None:
    rendered = FMT.render([UserMessage(content="Q")], [ToolSpec(name="f", description="F.")])
    system = rendered.messages[0]
    assert isinstance(system, SystemMessage) and system.content.startswith("# Tools\n\nYou may call one or more")
    assert '{"type": "function", "function": {"name": "f", "description": "F.", "parameters": ' in system.content


def test_parse_completion_marks_an_unclosed_call_cut_by_the_token_limit() -> None:
    cut = FMT.parse_completion(
        Completion(text='<tool_call>\n{"name": "f", "arguments": {"code": "pri', finish_reason="length")
    )
    assert cut.tool_calls[0].arguments_error
    whole = FMT.parse_completion(Completion(text=block("f", {"a": 1}), finish_reason="length"))
    assert whole.tool_calls[0].arguments_error is None


def test_fenced_json_call_without_tags_is_read_as_a_call() -> None:
    # Qwen2.5-Coder-0.5B answered a code-interpreter question exactly like this.
    text = ('Let me compute it.\n```json\n{\n  "name": "code_interpreter",\n  "arguments": {\n'
            '    "code": "print(sum(i*i for i in range(1, 101)))"\n  }\n}\n```')
    reply = NousFormat().parse(text)
    (call,) = reply.tool_calls
    assert call.name == "code_interpreter" and call.arguments == {"code": "print(sum(i*i for i in range(1, 101)))"}
    assert reply.content == "Let me compute it." and any("without <tool_call>" in p for p in reply.problems)
    bare = NousFormat().parse('{"name": "math.factorial", "arguments": {"n": 5}}')
    assert [c.name for c in bare.tool_calls] == ["math.factorial"]


def test_fenced_json_that_is_not_a_call_stays_an_answer() -> None:
    text = 'Here is the config:\n```json\n{"name": "app", "version": 2}\n```'
    reply = NousFormat().parse(text)
    assert reply.tool_calls == [] and "```json" in reply.content
