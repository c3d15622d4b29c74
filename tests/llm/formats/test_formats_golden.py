"""Golden tests: the exact text each prompt format renders for fixed conversations and tools.

The expected renderings live in ``golden/<format>_<case>.txt``. After an intended template change,
regenerate them with ``QWENKIT_UPDATE_GOLDEN=1 pytest tests/llm/formats/test_formats_golden.py`` and
review the diff line by line against the upstream templates cited in each format's module docstring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qwenkit.llm.formats import FORMAT_NAMES, RenderedPrompt, get_format
from qwenkit.types import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

GOLDEN = Path(__file__).parent / "golden"

TOOLS = [
    ToolSpec(
        name="math.factorial",
        human_name="Factorial",
        description="Compute n! for a non-negative integer n.",
        parameters={
            "type": "object",
            "properties": {"n": {"type": "integer", "description": "A non-negative integer."}},
            "required": ["n"],
        },
    ),
    ToolSpec(
        name="get_weather",
        description="Get the current weather in a city.",
        parameters={
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    ),
]

FACTORIAL = ToolCall(id="call_1", name="math.factorial", arguments={"n": 5}, raw_arguments='{"n": 5}')
WEATHER = ToolCall(id="call_2", name="get_weather", arguments={"city": "Paris"}, raw_arguments='{"city": "Paris"}')

# One open turn: two parallel calls and their results, no answer yet.
OPEN_TURN: list[Message] = [
    SystemMessage(content="You are a helpful assistant."),
    UserMessage(content="What is 5! plus the weather in Paris?"),
    AssistantMessage(reasoning="I need 5! and the weather in Paris.", tool_calls=(FACTORIAL, WEATHER)),
    ToolMessage(tool_call_id="call_1", name="math.factorial", content="120"),
    ToolMessage(tool_call_id="call_2", name="get_weather", content="Sunny, 18 degrees Celsius"),
]

# A completed turn (call, result, answer), then a new question.
NEW_TURN: list[Message] = [
    SystemMessage(content="You are a helpful assistant."),
    UserMessage(content="What is 5!?"),
    AssistantMessage(reasoning="I should compute 5!.", tool_calls=(FACTORIAL,)),
    ToolMessage(tool_call_id="call_1", name="math.factorial", content="120"),
    AssistantMessage(content="5! is 120."),
    UserMessage(content="And what is the weather in Paris?"),
]

# Chinese conversation for the qwen format's Chinese, single-call system text.
CHINESE_TURN: list[Message] = [
    UserMessage(content="巴黎的天气怎么样？"),
    AssistantMessage(content="我来查一下。", tool_calls=(WEATHER,)),
    ToolMessage(tool_call_id="call_2", name="get_weather", content="晴，18摄氏度"),
]

CASES: dict[str, tuple[list[Message], dict[str, object]]] = {
    "open_turn": (OPEN_TURN, {}),
    "new_turn": (NEW_TURN, {}),
}


def dump(rendered: RenderedPrompt) -> str:
    """Write a rendered prompt as plain text: settings, then each message's fields and exact content."""
    lines = [
        f"stop: {json.dumps(rendered.stop, ensure_ascii=False)}",
        f"continue_final: {json.dumps(rendered.continue_final)}",
        f"tools: {json.dumps(rendered.tools, ensure_ascii=False, indent=2)}",
    ]
    for message in rendered.messages:
        data = message.model_dump()
        role, content = data.pop("role"), data.pop("content")
        extras = {k: v for k, v in data.items() if v not in ("", [], (), None)}
        header = f"=== {role}" + (f" {json.dumps(extras, ensure_ascii=False)}" if extras else "") + " ==="
        lines += [header, content]
    return "\n".join(lines) + "\n"


def check_golden(name: str, rendered: RenderedPrompt) -> None:
    path = GOLDEN / f"{name}.txt"
    text = dump(rendered)
    if os.environ.get("QWENKIT_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"rendering differs from {path}"


GOLDEN_FORMATS = tuple(name for name in FORMAT_NAMES if name != "pythonic")
"""pythonic (BFCL's prompt) is pinned by its own tests, against BFCL's text."""


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fmt", GOLDEN_FORMATS)
def test_golden(fmt: str, case: str) -> None:
    messages, options = CASES[case]
    check_golden(f"{fmt}_{case}", get_format(fmt, **options).render(messages, TOOLS))


def test_golden_qwen_chinese_single() -> None:
    rendered = get_format("qwen", parallel=False).render(CHINESE_TURN, TOOLS)
    check_golden("qwen_zh_single", rendered)


def test_open_turns_are_continued() -> None:
    react = get_format("react").render(OPEN_TURN, TOOLS)
    assert react.continue_final and react.messages[-1].role == "assistant"
    assert react.messages[-1].content.endswith("\nObservation: Sunny, 18 degrees Celsius\nThought:")
    qwen = get_format("qwen").render(OPEN_TURN, TOOLS)
    assert qwen.continue_final and qwen.messages[-1].content.endswith("\n✿RETURN✿")
    for fmt in ("nous", "qwen3_coder", "native"):
        assert not get_format(fmt).render(OPEN_TURN, TOOLS).continue_final


def test_completed_turns_are_not_continued() -> None:
    for fmt in FORMAT_NAMES:
        rendered = get_format(fmt).render(NEW_TURN, TOOLS)
        assert not rendered.continue_final
        assert rendered.messages[-1].role == "user"


def test_react_question_is_the_latest_user_message() -> None:
    rendered = get_format("react").render(NEW_TURN, TOOLS)
    users = [m.content for m in rendered.messages if m.role == "user"]
    assert users[0] == "What is 5!?"
    assert users[1].startswith("Answer the following questions as best you can.")
    assert users[1].endswith("\n\nBegin!\n\nQuestion: And what is the weather in Paris?")


def test_stop_words() -> None:
    assert get_format("react").render(OPEN_TURN, TOOLS).stop == ["Observation:", "Observation:\n"]
    assert get_format("qwen").render(OPEN_TURN, TOOLS).stop == ["✿RESULT✿", "✿RETURN✿"]
    assert get_format("nous").render(OPEN_TURN, TOOLS).stop == []
    assert get_format("native").render(OPEN_TURN, TOOLS).stop == []


def test_rendering_does_not_change_the_input() -> None:
    before = [m.model_copy() for m in OPEN_TURN]
    for fmt in FORMAT_NAMES:
        get_format(fmt).render(OPEN_TURN, TOOLS)
    assert before == OPEN_TURN
