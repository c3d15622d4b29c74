"""Property tests: no string a model (or a broken server) returns makes a format's parser raise.

Each format gets 10,000 generated replies that mix random text with that format's markers, JSON
fragments, fences and CJK text, read with ``parse`` or ``parse_completion`` (which calls ``parse``);
the native format also gets server-parsed calls with broken arguments. Random conversations are
rendered by every text format and the assistant text it wrote is read back.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.llm.formats import (
    FORMAT_NAMES,
    NativeFormat,
    NousFormat,
    ParsedReply,
    PromptFormat,
    QwenFormat,
    ReActFormat,
    get_format,
)
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

MANY = settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

COMMON = [
    "\n", "\n\n", " ", "\t", "{", "}", "[", "]", '"', "'", ",", ":", "：", "\\", "\\n", "```", "```py\n",
    "```python\n", "```json\n", "\n```", "math.factorial", "get_weather", '"name"', '"arguments"',
    '{"n": 5}', "{'city': 'Paris',}", '{"city": "Paris"', '{"code": "print(1)"}', "null", "123", "[1, 2]",
    "<think>", "</think>", "数学", "巴黎的天气", "✿", "你好", "😀", "\x00", "\r\n",
]  # fmt: skip
MARKERS = {
    "react": [
        "Thought:", "Thought: ", "\nThought:", "Action:", "\nAction: ", "Action Input:", "\nAction Input: ",
        "Observation:", "\nObservation:", "Observation", "Final Answer:", "\nFinal Answer: ", "action input：",
        '\nAction: math.factorial\nAction Input: {"n": 5}\n',
    ],
    "qwen": [
        "✿FUNCTION✿", "✿FUNCTION✿: ", "\n✿FUNCTION✿: ", "✿ARGS✿", "\n✿ARGS✿: ", "✿RESULT✿", "\n✿RESULT✿: ",
        "✿RETURN✿", "\n✿RETURN✿: ", "✿FUNC", "✿AR", ": ", "✿FUNCTION✿：", '\n✿FUNCTION✿: f.g\n✿ARGS✿: {"n": 5}',
    ],
    "nous": [
        "<tool_call>", "<tool_call>\n", "</tool_call>", "\n</tool_call>", "<tool_response>", "</tool_response>",
        '{"name": "', '", "arguments": ', '"parameters": ', "<code>", "</code>", "<tool_", "}}",
        '<tool_call>\n{"name": "math.factorial", "arguments": {"n": 5}}\n</tool_call>',
    ],
}  # fmt: skip


def _snippets(seed: int, n: int) -> list[str]:
    """Short random strings over an alphabet of JSON, marker and CJK characters (fixed seed)."""
    rng = random.Random(seed)
    alphabet = "ab xyz{}[]\"':,\n\t\\✿数学😀\x00`<>/_-.0123456789：ActionObservationthink"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(n)]


SNIPPETS = _snippets(0, 64)


def _char(index: int) -> str:
    """Any character but a surrogate, spread over the first three Unicode planes."""
    code = (index * 2654435761) % 0x2FFFF + 1
    return chr(code - 0x800 if 0xD800 <= code <= 0xDFFF else code)


def _decode(data: bytes, vocabulary: list[str]) -> str:
    """Turn bytes into a reply: a byte below ``len(vocabulary)`` is a piece, any other byte and the
    next one pick a character."""
    out: list[str] = []
    i = 0
    while i < len(data):
        b = data[i]
        if b < len(vocabulary):
            out.append(vocabulary[b])
            i += 1
        else:
            out.append(_char((b - len(vocabulary)) * 256 + (data[i + 1] if i + 1 < len(data) else 0)))
            i += 2
    return "".join(out)


def replies(fmt: str) -> st.SearchStrategy[str]:
    """Random replies mixing the format's markers (weighted twice), JSON bits, fences, CJK and any text.

    The pieces come from one ``st.binary`` draw (a few hundred microseconds per example, so 10,000
    examples per format stay fast, and failures still shrink); ``st.text`` adds free Unicode at a place
    chosen by the first byte.
    """
    vocabulary = MARKERS[fmt] * 2 + COMMON + SNIPPETS
    assert len(vocabulary) < 200, "every piece must be reachable from one byte, with room for characters"

    def build(drawn: tuple[bytes, str]) -> str:
        data, text = drawn
        reply = _decode(data, vocabulary)
        at = data[0] % (len(reply) + 1) if data else 0
        return reply[:at] + text + reply[at:]

    return st.tuples(st.binary(min_size=8, max_size=64), st.text(max_size=6)).map(build)


FINISH = st.sampled_from([None, "stop", "length", "tool_calls"])


SERVER_NAMES = ["math.factorial", " get_weather ", "", "✿", "a.b.c"]
SERVER_ARGUMENTS = [*COMMON, *SNIPPETS, '{"n": 5}', "", "{'a': [1,", "```py\nprint(1)\n```"]


def server_calls() -> st.SearchStrategy[tuple[ToolCall, ...]]:
    """Calls as a server's tool parser returns them, some with arguments it could not decode.

    Two bytes make one call (name, raw arguments, whether the server flagged an error): one draw.
    """

    def build(data: bytes) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(
                name=SERVER_NAMES[a % len(SERVER_NAMES)],
                raw_arguments=SERVER_ARGUMENTS[b % len(SERVER_ARGUMENTS)],
                arguments_error="bad JSON" if a & 0x80 else None,
            )
            for a, b in zip(data[::2], data[1::2], strict=False)
        )

    return st.binary(max_size=6).map(build)


def check(fmt: PromptFormat, text: str, finish_reason: str | None) -> None:
    """Read ``text`` (with ``parse``, or ``parse_completion``, which calls it, when there is a finish reason)."""
    if finish_reason is None:
        reply = fmt.parse(text)
    else:
        reply = fmt.parse_completion(Completion(text=text, finish_reason=finish_reason))
    assert isinstance(reply, ParsedReply)
    for call in reply.tool_calls:
        assert isinstance(call.arguments, dict)
        assert call.arguments_error is None or call.arguments == {}


@MANY
@given(text=replies("react"), finish_reason=FINISH)
def test_react_parse_never_raises(text: str, finish_reason: str | None) -> None:
    check(ReActFormat(), text, finish_reason)


@MANY
@given(text=replies("qwen"), finish_reason=FINISH, parallel=st.booleans())
def test_qwen_parse_never_raises(text: str, finish_reason: str | None, parallel: bool) -> None:
    check(QwenFormat(parallel=parallel), text, finish_reason)


@MANY
@given(text=replies("nous"), finish_reason=FINISH)
def test_nous_parse_never_raises(text: str, finish_reason: str | None) -> None:
    check(NousFormat(), text, finish_reason)


@MANY
@given(text=replies("nous"), finish_reason=FINISH, calls=server_calls())
def test_native_parse_never_raises(text: str, finish_reason: str | None, calls: tuple[ToolCall, ...]) -> None:
    fmt = NativeFormat()
    if not calls:  # a server without a tool parser: the calls are in the text
        check(fmt, text, finish_reason)
        return
    reply = fmt.parse_completion(Completion(text=text, tool_calls=calls, finish_reason=finish_reason))
    assert isinstance(reply, ParsedReply)
    assert [c.id for c in reply.tool_calls] == [c.id for c in calls]


EDGE_CASES = [
    "", " ", "\n", "{", "}", "```", "```py", "Action Input:", "Action:", "Final Answer:", "Observation:",
    "✿FUNCTION✿", "✿ARGS✿", "✿RETURN✿", ":", "<tool_call>", "</tool_call>", "<tool_call></tool_call>",
    "<think>", "</think>", "<code>", "[" * 5000, "{" * 5000, '{"a":' * 2000, "Action Input: " + "[" * 3000,
    "<tool_call>" + "{" * 3000, "✿FUNCTION✿: f\n✿ARGS✿: " + "{" * 3000, "\x00" * 100, "\ud800",
]  # fmt: skip


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("text", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases(fmt: str, text: str) -> None:
    for finish_reason in (None, "length"):
        check(get_format(fmt), text, finish_reason)


@pytest.mark.parametrize("fmt", ["react", "qwen", "nous"])
def test_generated_replies_reach_the_call_paths(fmt: str) -> None:
    """The generator is only useful if many replies hold calls, broken arguments and problems."""
    rng = random.Random(1)
    vocabulary = MARKERS[fmt] * 2 + COMMON + SNIPPETS
    parsed = [get_format(fmt).parse(_decode(rng.randbytes(rng.randint(8, 64)), vocabulary)) for _ in range(2000)]
    with_calls = sum(bool(r.tool_calls) for r in parsed)
    with_errors = sum(any(c.arguments_error for c in r.tool_calls) for r in parsed)
    with_problems = sum(bool(r.problems) for r in parsed)
    read = sum(any(c.arguments and not c.arguments_error for c in r.tool_calls) for r in parsed)
    counts = (with_calls, with_errors, with_problems, read)
    assert with_calls > 400 and with_errors > 60 and with_problems > 400 and read > 150, counts


# Rendering: random conversations (contents full of markers) render, and every format reads back the
# assistant text it wrote without raising.

ANY_TEXT = replies("react") | replies("qwen") | replies("nous")
TOOL = st.builds(ToolSpec, name=st.sampled_from(["math.factorial", "get_weather", "python"]), description=ANY_TEXT)


def _message(draw: Any) -> Message:
    kind = draw(st.sampled_from(["system", "user", "assistant", "tool"]))
    text = draw(ANY_TEXT)
    if kind == "system":
        return SystemMessage(content=text)
    if kind == "user":
        return UserMessage(content=text)
    if kind == "tool":
        return ToolMessage(tool_call_id=draw(st.sampled_from(["a", "b"])), name="f", content=text)
    n = draw(st.integers(0, 2))
    calls = tuple(ToolCall(id="ab"[i], name=draw(ANY_TEXT), raw_arguments=draw(ANY_TEXT)) for i in range(n))
    return AssistantMessage(content=text, reasoning=draw(ANY_TEXT), tool_calls=calls)


@st.composite
def conversations(draw: Any) -> list[Message]:
    return [_message(draw) for _ in range(draw(st.integers(0, 6)))]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=conversations(), tools=st.lists(TOOL, max_size=3),
       name=st.sampled_from(["react", "qwen", "nous", "qwen3_coder"]))
def test_render_never_raises(messages: list[Message], tools: list[ToolSpec], name: str) -> None:
    fmt = get_format(name)
    rendered = fmt.render(messages, tools)
    # qwen without tools writes past calls as plain text (as Qwen-Agent), so there is no turn to continue
    assert rendered.continue_final == (
        bool(rendered.messages) and rendered.messages[-1].role == "assistant"
        and name not in ("nous", "qwen3_coder") and (name == "react" or bool(tools))
    )
    for m in rendered.messages:
        if isinstance(m, AssistantMessage):
            assert isinstance(fmt.parse(m.content), ParsedReply)
