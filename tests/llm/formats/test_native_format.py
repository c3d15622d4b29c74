"""Native format: pass-through rendering, server tool calls, text fallback; and `get_format`."""

from __future__ import annotations

import pytest

from qwenkit.llm.formats import (
    FORMAT_NAMES,
    NativeFormat,
    NousFormat,
    PromptFormat,
    PythonicFormat,
    Qwen3CoderFormat,
    QwenFormat,
    ReActFormat,
    get_format,
)
from qwenkit.types import AssistantMessage, Completion, ToolCall, ToolMessage, ToolSpec, UserMessage

FMT = NativeFormat()


def test_render_passes_messages_and_tools() -> None:
    call = ToolCall(id="c1", name="math.factorial", arguments={"n": 5}, raw_arguments='{"n": 5}')
    messages = [
        UserMessage(content="Q"),
        AssistantMessage(tool_calls=(call,)),
        ToolMessage(tool_call_id="c1", name="math.factorial", content="120"),
    ]
    tool = ToolSpec(name="math.factorial", description="n!")
    rendered = FMT.render(messages, [tool])
    assert rendered.messages == messages
    assert rendered.tools == [tool.openai_schema()]
    assert (rendered.stop, rendered.continue_final) == ([], False)
    assert FMT.render(messages, []).tools is None


def test_server_tool_calls_are_taken() -> None:
    calls = (
        ToolCall(id="a", name="math.factorial", arguments={"n": 5}, raw_arguments='{"n": 5}'),
        ToolCall(id="b", name="get_weather", arguments={"city": "Paris"}, raw_arguments='{"city": "Paris"}'),
    )
    reply = FMT.parse_completion(Completion(text="Checking both.", tool_calls=calls, finish_reason="tool_calls"))
    assert reply.content == "Checking both."
    assert reply.tool_calls == list(calls)


def test_server_arguments_are_reread_forgivingly() -> None:
    calls = (
        ToolCall(id="a", name=" get_weather ", raw_arguments="{'city': 'Paris',}", arguments_error="bad JSON"),
        ToolCall(id="b", name="f", raw_arguments='{"x": 1}'),  # backend left them unparsed
        ToolCall(id="c", name="g", raw_arguments="Paris", arguments_error="bad JSON"),
    )
    reply = FMT.parse_completion(Completion(tool_calls=calls))
    assert [(c.id, c.name, c.arguments, c.arguments_error) for c in reply.tool_calls[:2]] == [
        ("a", "get_weather", {"city": "Paris"}, None),
        ("b", "f", {"x": 1}, None),
    ]
    assert reply.tool_calls[2].arguments_error


def test_text_fallback_reads_tool_call_blocks() -> None:
    text = 'Sure.\n<tool_call>\n{"name": "math.factorial", "arguments": {"n": 5}}\n</tool_call>'
    for reply in (FMT.parse(text), FMT.parse_completion(Completion(text=text))):
        assert reply.content == "Sure."
        assert [(c.name, c.arguments) for c in reply.tool_calls] == [("math.factorial", {"n": 5})]


def test_think_is_split_from_content() -> None:
    reply = FMT.parse_completion(Completion(text="<think>hmm</think>\n\nHi", tool_calls=(ToolCall(name="f"),)))
    assert (reply.reasoning, reply.content) == ("hmm", "Hi")


def test_tool_choice_goes_on_prompts_with_tools() -> None:
    assert NativeFormat().tool_choice is None
    fmt = get_format("native", tool_choice="required")
    spec = ToolSpec(name="f", parameters={"type": "object", "properties": {}})
    assert fmt.render([UserMessage(content="hi")], [spec]).tool_choice == "required"
    assert fmt.render([UserMessage(content="hi")], []).tool_choice is None


def test_get_format() -> None:
    assert FORMAT_NAMES == ("react", "qwen", "nous", "qwen3_coder", "pythonic", "native")
    kinds = {"react": ReActFormat, "qwen": QwenFormat, "nous": NousFormat, "qwen3_coder": Qwen3CoderFormat,
             "pythonic": PythonicFormat, "native": NativeFormat}
    for name in FORMAT_NAMES:
        fmt = get_format(name)
        assert isinstance(fmt, kinds[name]) and isinstance(fmt, PromptFormat) and fmt.name == name
    assert isinstance(get_format(" Qwen "), QwenFormat)
    qwen = get_format("qwen", parallel=False, lang="zh")
    assert isinstance(qwen, QwenFormat) and not qwen.parallel and qwen.lang == "zh"
    assert get_format("react") is not get_format("react")  # no shared state


def test_get_format_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"react, qwen, nous, qwen3_coder, pythonic, native"):
        get_format("hermes")
    with pytest.raises(TypeError):
        get_format("react", parallel=True)
