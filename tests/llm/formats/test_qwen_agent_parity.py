"""Parity with Qwen-Agent (``qwen-agent==0.0.34``): each test renders or reads the same thing both ways.

Where qwenkit differs on purpose, the test asserts the difference exactly (the README states why).
Skipped only when ``qwen_agent`` is not importable (it is an optional dependency).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from qwenkit.errors import ConfigError
from qwenkit.llm.formats import NousFormat, QwenFormat, ReActFormat
from qwenkit.llm.formats.base import tool_turns_as_text, with_prefill
from qwenkit.llm.formats.qwen import tool_description
from qwenkit.types import (
    AssistantMessage,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

qa_schema = pytest.importorskip("qwen_agent.llm.schema", reason="qwen-agent is not installed (optional)")
from qwen_agent.llm.fncall_prompts.nous_fncall_prompt import NousFnCallPrompt  # noqa: E402
from qwen_agent.llm.fncall_prompts.qwen_fncall_prompt import (  # noqa: E402
    QwenFnCallPrompt,
    get_function_description,
)
from qwen_agent.llm.function_calling import BaseFnCallModel  # noqa: E402

ContentItem, FunctionCall, QAMessage = qa_schema.ContentItem, qa_schema.FunctionCall, qa_schema.Message

WEATHER = ToolSpec(name="get_weather", description="Weather for a city.",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
FACTORIAL = ToolSpec(name="factorial", description="n!",
                     parameters={"type": "object", "properties": {"n": {"type": "integer"}}})
TOOLS = [WEATHER, FACTORIAL]
PARIS = ToolCall(id="a", name="get_weather", arguments={"city": "Paris"})
F5 = ToolCall(id="b", name="factorial", arguments={"n": 5})


def conversation(question: str = "Weather in Paris and 5!?") -> list[Message]:
    return [
        SystemMessage(content="Be brief."), UserMessage(content=question),
        AssistantMessage(content="Looking.", tool_calls=(PARIS, F5)),
        ToolMessage(tool_call_id="a", name="get_weather", content="Sunny"),
        ToolMessage(tool_call_id="b", name="factorial", content=""),
        AssistantMessage(content="Sunny, and 120."), UserMessage(content="Thanks!"),
    ]


def to_qwen_agent(messages: list[Message]) -> list[Any]:
    """The same conversation as Qwen-Agent holds it: one message per call, results as ``function``."""
    out: list[Any] = []
    for m in messages:
        if isinstance(m, AssistantMessage):
            if m.content:
                out.append(QAMessage(role="assistant", content=[ContentItem(text=m.content)]))
            for c in m.tool_calls:
                args = json.dumps(c.arguments, ensure_ascii=False)
                out.append(QAMessage(role="assistant", content=[], function_call=FunctionCall(name=c.name,
                                                                                              arguments=args)))
        elif isinstance(m, ToolMessage):
            out.append(QAMessage(role="function", name=m.name,
                                 content=[ContentItem(text=m.content)] if m.content else []))
        else:
            out.append(QAMessage(role=m.role, content=[ContentItem(text=m.content)]))
    return out


def texts(messages: list[Any]) -> list[tuple[str, str]]:
    """(role, text) of Qwen-Agent messages (content items joined as its ``format_as_text_message``)."""
    return [(m.role, "".join(i.text for i in m.content) if isinstance(m.content, list) else m.content)
            for m in messages]


def ours(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def functions(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]


# ------------------------------------------------------------------- calls without tools / "none"


@pytest.mark.parametrize(("question", "lang"), [("Weather in Paris and 5!?", "en"), ("巴黎天气和5的阶乘？", "zh")])
def test_calls_without_tools_are_written_as_qwen_agent_writes_them(question: str, lang: str) -> None:
    messages = conversation(question)
    expected = texts(BaseFnCallModel._remove_fncall_messages(None, to_qwen_agent(messages), lang=lang))  # type: ignore[arg-type]
    assert ours(tool_turns_as_text(messages, lang)) == expected
    for fmt in (NousFormat(), QwenFormat()):  # no tools, or tool_choice="none": the same text
        assert ours(fmt.render(messages, []).messages) == expected
        assert ours(fmt.render(messages, TOOLS, tool_choice="none").messages) == expected


# ------------------------------------------------------------------------------- tool_choice


def test_qwen_named_tool_choice_prefills_as_qwen_agent() -> None:
    for messages in (conversation()[:2], conversation()[:5]):  # a fresh turn; a turn after results
        expected = texts(QwenFnCallPrompt().preprocess_fncall_messages(
            messages=to_qwen_agent(messages), functions=functions(TOOLS), lang="en",
            parallel_function_calls=True, function_choice="get_weather"))
        rendered = QwenFormat().render(messages, TOOLS, tool_choice="get_weather")
        assert ours(rendered.messages) == expected
        assert rendered.continue_final and rendered.prefill.endswith("✿FUNCTION✿: get_weather")
    # the reply continues the prefill; qwenkit reads prefill + reply
    reply = QwenFormat().parse_completion(with_prefill(Completion(text='\n✿ARGS✿: {"city": "Paris"}'),
                                                       rendered.prefill))
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_nous_named_tool_choice_prefills_the_call() -> None:
    rendered = NousFormat().render(conversation()[:2], TOOLS, tool_choice="get_weather")
    assert rendered.prefill == '<tool_call>\n{"name": "get_weather", "arguments": '
    assert rendered.continue_final and rendered.messages[-1] == AssistantMessage(content=rendered.prefill)
    reply = NousFormat().parse_completion(with_prefill(Completion(text='{"city": "Paris"}}\n</tool_call>'),
                                                       rendered.prefill))
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]
    required = NousFormat(tool_choice="required").render(conversation()[:2], TOOLS)
    assert required.prefill == "<tool_call>\n"


@pytest.mark.parametrize("fmt", [NousFormat(), QwenFormat()])
def test_a_choice_that_cannot_be_honoured_is_an_error(fmt: NousFormat | QwenFormat) -> None:
    with pytest.raises(ConfigError, match="nope"):
        fmt.render(conversation()[:2], TOOLS, tool_choice="nope")
    with pytest.raises(ConfigError, match="needs tools"):
        fmt.render(conversation()[:2], [], tool_choice="get_weather")


# ------------------------------------------------------------------------------ reading replies


def test_nous_history_matches_qwen_agent() -> None:
    messages = conversation()[:5]
    expected = texts(NousFnCallPrompt().preprocess_fncall_messages(
        messages=to_qwen_agent(messages), functions=functions(TOOLS), lang="en"))
    assert ours(NousFormat().render(messages, TOOLS).messages) == expected


def test_empty_tool_call_reaches_the_model_as_an_error() -> None:
    text = "Let me see.\n<tool_call></tool_call>"
    qa = NousFnCallPrompt().postprocess_fncall_messages([QAMessage(role="assistant", content=[ContentItem(text=text)])])
    assert [m.function_call.name for m in qa if m.function_call] == [""]  # Qwen-Agent: a call to "" (fails)
    [call] = NousFormat().parse(text).tool_calls
    assert call.name == "" and call.arguments_error  # qwenkit: the registry reports the error to the model


def test_the_next_prompt_carries_cleaned_arguments() -> None:
    text = ('Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}} // the city\n'
            "</tool_call>\nI will wait.")
    qa_reply = NousFnCallPrompt().postprocess_fncall_messages([QAMessage(role="assistant",
                                                                          content=[ContentItem(text=text)])])
    history = [QAMessage(role="user", content=[ContentItem(text="Q")]), *qa_reply]
    expected = texts(NousFnCallPrompt().preprocess_fncall_messages(messages=history, functions=functions(TOOLS),
                                                                   lang="en"))
    parsed = NousFormat().parse(text)
    turn = AssistantMessage(content=parsed.content, tool_calls=tuple(parsed.tool_calls))
    assert ours(NousFormat().render([UserMessage(content="Q"), turn], TOOLS).messages) == expected
    # qwen format: arguments followed by stray text are written back cleaned (Qwen-Agent keeps the raw text)
    reply = QwenFormat().parse('✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"} I will wait.')
    turn = AssistantMessage(tool_calls=tuple(reply.tool_calls))
    folded = QwenFormat().render([UserMessage(content="Q"), turn], TOOLS).messages[-1].content
    assert folded == '✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}'


# -------------------------------------------------------------------------- stated differences


def test_code_hint_rule() -> None:
    """Qwen-Agent gives the backticks hint to a tool *named* ``code_interpreter``; qwenkit to a tool whose only
    parameter is a string ``code`` (whatever its name). They agree on Qwen-Agent's own code interpreter."""
    code = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}
    ci = ToolSpec(name="code_interpreter", description="Run Python.", parameters=code)
    assert tool_description(ci, "en") == get_function_description(functions([ci])[0], "en")
    python = ToolSpec(name="python", description="Run Python.", parameters=code)
    assert "triple backticks" in tool_description(python, "en")
    assert "triple backticks" not in get_function_description(functions([python])[0], "en")


def test_parallel_calls_default_and_both_settings() -> None:
    """qwenkit's qwen format defaults to parallel calls (one step can fetch several results); Qwen-Agent's
    default is ``parallel_function_calls=False``. Both settings write Qwen-Agent's system text."""
    assert QwenFormat().parallel is True
    two = '✿FUNCTION✿: get_weather\n✿ARGS✿: {"city": "Paris"}\n✿FUNCTION✿: factorial\n✿ARGS✿: {"n": 5}'
    for parallel, kept in ((True, 2), (False, 1)):
        fmt = QwenFormat(parallel=parallel)
        assert len(fmt.parse(two).tool_calls) == kept
        expected = texts(QwenFnCallPrompt().preprocess_fncall_messages(
            messages=to_qwen_agent(conversation()[:2]), functions=functions(TOOLS), lang="en",
            parallel_function_calls=parallel))
        assert ours(fmt.render(conversation()[:2], TOOLS).messages) == expected


def test_react_prompt_differs_from_react_chat_as_stated() -> None:
    """qwenkit's ReAct follows Qwen's react_prompt.md: each tool line ends with "Format the arguments as a JSON
    object." and the prompt ends at the question; Qwen-Agent's ReActChat has no such sentence (empty
    ``args_format``) and appends "\\nThought: "."""
    from qwen_agent.agents.react_chat import PROMPT_REACT, TOOL_DESC

    rendered = ReActFormat().render([UserMessage(content="Weather?")], [WEATHER])
    ours_text = rendered.messages[-1].content
    desc = TOOL_DESC.format(name_for_model="get_weather", name_for_human="get_weather",
                            description_for_model=WEATHER.description,
                            parameters=json.dumps(WEATHER.parameters, ensure_ascii=False), args_format="").rstrip()
    react_chat = PROMPT_REACT.format(tool_descs=desc, tool_names="get_weather", query="Weather?")
    assert ours_text + "\nThought: " == react_chat.replace(desc, desc + " Format the arguments as a JSON object.")
