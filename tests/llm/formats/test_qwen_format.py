"""Qwen ✿FUNCTION✿ format: parsing replies, folding turns, language and parallel variants."""

from __future__ import annotations

import pytest

from qwenkit.llm.formats import ParsedReply, QwenFormat
from qwenkit.types import (
    AssistantMessage,
    Completion,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

FMT = QwenFormat()
TOOLS = [ToolSpec(name="math.factorial", description="n!"), ToolSpec(name="get_weather", description="Weather.")]


def calls(reply: ParsedReply) -> list[tuple[str, dict[str, object], str | None]]:
    return [(c.name, c.arguments, c.arguments_error) for c in reply.tool_calls]


def test_single_call() -> None:
    reply = FMT.parse('✿FUNCTION✿: math.factorial\n✿ARGS✿: {"n": 5}\n✿RESULT✿')
    assert calls(reply) == [("math.factorial", {"n": 5}, None)]
    assert (reply.content, reply.problems) == ("", [])


def test_parallel_calls() -> None:
    reply = FMT.parse(
        '✿FUNCTION✿: math.factorial\n✿ARGS✿: {"n": 5}\n✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}'
    )
    assert calls(reply) == [("math.factorial", {"n": 5}, None), ("get_weather", {"city": "Paris"}, None)]


def test_several_args_after_one_name_are_several_calls() -> None:
    reply = FMT.parse('✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}\n✿ARGS✿: {"city": "Rome"}')
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None), ("get_weather", {"city": "Rome"}, None)]


def test_parallel_off_keeps_the_first_call() -> None:
    reply = QwenFormat(parallel=False).parse("✿FUNCTION✿: a\n✿ARGS✿: {}\n✿FUNCTION✿: b\n✿ARGS✿: {}")
    assert calls(reply) == [("a", {}, None)] and reply.problems


def test_final_answer_after_return() -> None:
    # The open turn ends with "✿RETURN✿"; the model continues with ": answer".
    assert FMT.parse(": 5! is 120.").content == "5! is 120."
    assert FMT.parse(":5! is 120.").content == "5! is 120."
    assert FMT.parse("Just an answer.").content == "Just an answer."


def test_text_before_a_call_is_content() -> None:
    reply = FMT.parse('Let me check.\n✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}')
    assert reply.content == "Let me check."
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None)]


@pytest.mark.parametrize("ending", ["\n✿RESULT✿", "\n✿RESULT✿: ", "\n", "", "\n✿RES", "\n✿", "\n✿RETURN✿"])
def test_swallowed_stop_word(ending: str) -> None:
    base = '✿FUNCTION✿: math.factorial\n✿ARGS✿: {"n": 5}'
    full = FMT.parse(base + "\n✿RESULT✿")
    reply = FMT.parse(base + ending)
    assert calls(reply) == calls(full) == [("math.factorial", {"n": 5}, None)]
    assert reply.tool_calls[0].raw_arguments == full.tool_calls[0].raw_arguments == '{"n": 5}'
    assert reply.problems == full.problems == []


def test_hallucinated_result_is_cut() -> None:
    reply = FMT.parse('✿FUNCTION✿: f\n✿ARGS✿: {"a": 1}\n✿RESULT✿: 3\n✿RETURN✿: it is 3')
    assert calls(reply) == [("f", {"a": 1}, None)] and reply.content == "" and reply.problems


@pytest.mark.parametrize("args", ["{'city': 'Paris'}", '{"city": "Paris",}', '{"city": "Paris"', "{city: 'Paris'}"])
def test_broken_json_is_repaired(args: str) -> None:
    reply = FMT.parse(f"✿FUNCTION✿: get_weather\n✿ARGS✿: {args}")
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None)]


def test_fenced_code_argument() -> None:
    reply = FMT.parse("✿FUNCTION✿: code_interpreter\n✿ARGS✿: \n```python\nprint(1)\n```")
    assert calls(reply) == [("code_interpreter", {"code": "print(1)"}, None)]


def test_unknown_tool_and_bad_arguments_pass_through() -> None:
    reply = FMT.parse("✿FUNCTION✿: nope\n✿ARGS✿: Paris")
    [call] = reply.tool_calls
    assert call.name == "nope" and call.arguments == {} and call.arguments_error and call.raw_arguments == "Paris"


def test_full_width_colon() -> None:
    reply = FMT.parse('好的。\n✿FUNCTION✿：get_weather\n✿ARGS✿：{"city": "巴黎"}')
    assert reply.content == "好的。"
    assert calls(reply) == [("get_weather", {"city": "巴黎"}, None)]


def test_dotted_names_round_trip() -> None:
    call = ToolCall(name="math.factorial", arguments={"n": 5}, raw_arguments='{"n": 5}')
    rendered = FMT.render(
        [UserMessage(content="5!?"), AssistantMessage(content="Computing.", tool_calls=(call,))], TOOLS
    )
    reply = FMT.parse(rendered.messages[-1].content)
    assert calls(reply) == [("math.factorial", {"n": 5}, None)] and reply.content == "Computing."


def test_multi_step_turn_folds_like_qwen_agent() -> None:
    a = ToolCall(id="a", name="f", raw_arguments='{"x": 1}')
    b = ToolCall(id="b", name="g", raw_arguments='{"y": 2}')
    c = ToolCall(id="c", name="code", raw_arguments="```py\nprint(1)\n```")
    rendered = FMT.render(
        [
            UserMessage(content="Q"),
            AssistantMessage(content="First.", tool_calls=(a, b)),
            ToolMessage(tool_call_id="a", name="f", content="A"),
            ToolMessage(tool_call_id="b", name="g", content="B"),
            AssistantMessage(tool_calls=(c,)),
            ToolMessage(tool_call_id="c", name="code", content="1"),
        ],
        TOOLS,
    )
    assert [m.role for m in rendered.messages] == ["system", "user", "assistant"]
    assert rendered.messages[-1].content == (
        'First.\n✿FUNCTION✿: f\n✿ARGS✿: {"x": 1}\n✿FUNCTION✿: g\n✿ARGS✿: {"y": 2}\n'
        "✿RESULT✿: A\n✿RESULT✿: B\n✿RETURN✿: \n"
        "✿FUNCTION✿: code\n✿ARGS✿: \n```py\nprint(1)\n```\n✿RESULT✿: 1\n✿RETURN✿"
    )
    assert rendered.continue_final


def test_language_choice() -> None:
    english = [SystemMessage(content="Be brief."), UserMessage(content="Weather?")]
    chinese = [SystemMessage(content="Be brief."), UserMessage(content="天气怎么样？")]
    assert FMT.language(english) == "en" and FMT.language(chinese) == "zh"
    assert QwenFormat(lang="en").language(chinese) == "en"
    assert QwenFormat(lang="zh").language(english) == "zh"
    system = FMT.render(chinese, TOOLS).messages[0].content
    assert system.startswith("Be brief.\n\n# 工具\n\n## 你拥有如下工具：\n\n### math.factorial\n\n")
    assert "## 你可以在回复中插入以下命令以并行调用N个工具：" in system
    with pytest.raises(ValueError, match="lang"):
        QwenFormat(lang="fr")  # type: ignore[arg-type]


def test_single_call_system_text() -> None:
    system = QwenFormat(parallel=False).render([UserMessage(content="Q")], TOOLS).messages[0].content
    assert "## When you need to call a tool, please insert the following command in your reply" in system
    assert "✿FUNCTION✿: The tool to use, should be one of [math.factorial,get_weather]" in system


def test_code_tool_hint() -> None:
    tool = ToolSpec(
        name="code_interpreter",
        description="Run code.",
        parameters={"type": "object", "properties": {"code": {"type": "string"}}},
    )
    system = FMT.render([UserMessage(content="Q")], [tool]).messages[0].content
    assert (
        'code_interpreter: Run code. Parameters: {"type": "object", "properties": {"code": '
        '{"type": "string"}}} Enclose the code within triple backticks (`) at the beginning and end of '
        "the code."
    ) in system


def test_parse_completion_marks_a_call_cut_by_the_token_limit() -> None:
    text = '✿FUNCTION✿: f\n✿ARGS✿: {"code": "print(1'
    cut = FMT.parse_completion(Completion(text=text, finish_reason="length"))
    assert cut.tool_calls[0].arguments_error and cut.tool_calls[0].arguments == {}
    assert FMT.parse_completion(Completion(text=text, finish_reason="stop")).tool_calls[0].arguments_error is None
