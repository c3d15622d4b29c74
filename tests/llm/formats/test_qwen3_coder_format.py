"""Qwen3-Coder's XML call format: parsing ``<function=...>`` calls typed by the schema, rendering, tool_choice."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.errors import ConfigError
from qwenkit.llm.formats import ParsedReply, Qwen3CoderFormat, get_format
from qwenkit.llm.formats.base import CALLS_IN_THINKING, with_prefill
from qwenkit.types import AssistantMessage, Completion, SystemMessage, ToolCall, ToolMessage, ToolSpec, UserMessage

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "days": {"type": "integer"},
            "ratio": {"type": "number"},
            "metric": {"type": "boolean"},
            "opts": {"type": "object"},
            "hours": {"type": "array", "items": {"type": "integer"}},
            "maybe": {"type": ["integer", "null"]},
        },
        "required": ["city"],
    },
)
PYTHON = ToolSpec(name="python", description="Run code.",
                  parameters={"type": "object", "properties": {"code": {"type": "string"}}})


def fmt() -> Qwen3CoderFormat:
    return Qwen3CoderFormat(tools=[WEATHER, PYTHON])


def call_text(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


def test_parameters_are_typed_from_the_schema() -> None:
    reply = fmt().parse(call_text("get_weather", city="123", days="3", ratio="0.5", metric="True",
                                  opts='{"a": [1]}', hours="[1, 2]", maybe="null"))
    [call] = reply.tool_calls
    assert call.arguments == {"city": "123", "days": 3, "ratio": 0.5, "metric": True, "opts": {"a": [1]},
                              "hours": [1, 2], "maybe": None}
    assert call.arguments_error is None and reply.problems == [] and reply.content == ""


def test_strings_are_raw_one_newline_stripped_each_side() -> None:
    code = "\n  for i in range(3):\n    print('<b>', i)\n"
    [call] = fmt().parse(call_text("python", code=code)).tool_calls
    assert call.arguments == {"code": code}


def test_unknown_tools_and_parameters_stay_strings() -> None:
    [call] = fmt().parse(call_text("other", n="5")).tool_calls
    assert (call.name, call.arguments) == ("other", {"n": "5"})


def test_a_value_that_does_not_fit_its_type_is_kept_as_text_with_a_problem() -> None:
    reply = fmt().parse(call_text("get_weather", city="Paris", days="three"))
    assert reply.tool_calls[0].arguments == {"city": "Paris", "days": "three"}
    assert any("days" in p for p in reply.problems)


def test_text_around_and_several_calls() -> None:
    text = "Let me look.\n" + call_text("get_weather", city="Paris") + "\n" + call_text("python", code="1+1")
    reply = fmt().parse(text + "\nI will wait.")
    assert [c.name for c in reply.tool_calls] == ["get_weather", "python"]
    assert reply.content == "Let me look." and any("after a tool call" in p for p in reply.problems)


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>",  # no </tool_call>
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n",  # no </function>
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n",  # no </parameter>
        "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>",  # no <tool_call>
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</tool_call>",
    ],
)
def test_missing_closers_are_forgiven(text: str) -> None:
    [call] = fmt().parse(text).tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})


def test_empty_tool_call_reaches_the_model_as_an_error() -> None:
    reply = fmt().parse("Hmm.\n<tool_call>\n</tool_call>")
    [call] = reply.tool_calls
    assert call.name == "" and call.arguments_error and reply.content == "Hmm."


def test_a_hallucinated_response_is_cut() -> None:
    reply = fmt().parse(call_text("python", code="1") + "\n<tool_response>\n2\n</tool_response>\nIt is 2.")
    assert len(reply.tool_calls) == 1 and "It is 2" not in reply.content and reply.problems


def test_calls_inside_thinking_are_not_run() -> None:
    reply = fmt().parse("I could " + call_text("python", code="1") + "\n</think>\n\nThe answer is 2.")
    assert reply.tool_calls == [] and reply.content.strip() == "The answer is 2."
    assert "I could" in reply.reasoning and CALLS_IN_THINKING in reply.problems


def test_token_limit_marks_an_unclosed_last_call() -> None:
    cut = fmt().parse_completion(Completion(text="<tool_call>\n<function=python>\n<parameter=code>\npri",
                                            finish_reason="length"))
    assert cut.tool_calls[0].arguments_error
    whole = fmt().parse_completion(Completion(text=call_text("python", code="1"), finish_reason="length"))
    assert whole.tool_calls[0].arguments_error is None


def test_max_calls() -> None:
    reply = Qwen3CoderFormat(max_calls=2).parse(call_text("f", a="1") * 5)
    assert len(reply.tool_calls) == 2 and any("kept the first 2" in p for p in reply.problems)


def test_the_last_render_types_the_reply() -> None:
    f = Qwen3CoderFormat()
    assert f.parse(call_text("get_weather", days="3")).tool_calls[0].arguments == {"days": "3"}
    f.render([UserMessage(content="q")], [WEATHER])
    assert f.parse(call_text("get_weather", days="3")).tool_calls[0].arguments == {"days": 3}


def test_render_writes_the_templates_turns() -> None:
    a = ToolCall(id="a", name="get_weather", arguments={"city": "巴黎", "days": 2, "metric": False})
    b = ToolCall(id="b", name="python", arguments={"code": "print(1)"})
    rendered = fmt().render(
        [UserMessage(content="Q"), AssistantMessage(content=" Both. ", tool_calls=(a, b)),
         ToolMessage(tool_call_id="a", name="get_weather", content="sunny"),
         ToolMessage(tool_call_id="b", name="python", content="1")],
        [WEATHER, PYTHON],
    )
    system, user, assistant, results = rendered.messages
    assert isinstance(system, SystemMessage) and system.content.startswith(
        "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.\n\n# Tools\n\n")
    assert "<name>days</name>\n<type>integer</type>" in system.content
    assert '\n<required>["city"]</required>' in system.content
    assert user.content == "Q"
    assert assistant.content == (
        "Both.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\n巴黎\n</parameter>\n<parameter=days>\n2\n"
        "</parameter>\n<parameter=metric>\nFalse\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n"
        "<function=python>\n<parameter=code>\nprint(1)\n</parameter>\n</function>\n</tool_call>"
    )
    assert results.content == "<tool_response>\nsunny\n</tool_response>\n<tool_response>\n1\n</tool_response>\n"
    assert rendered.stop == [] and not rendered.continue_final


REST = "<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"


@pytest.mark.parametrize(("choice", "prefill", "continuation"), [
    ("get_weather", "<tool_call>\n<function=get_weather>\n", REST),
    ("required", "<tool_call>\n<function=", "get_weather>\n" + REST),
])
def test_tool_choice_prefills_the_call(choice: str, prefill: str, continuation: str) -> None:
    f = Qwen3CoderFormat(tool_choice=choice)
    rendered = f.render([UserMessage(content="Weather in Paris?")], [WEATHER])
    assert rendered.continue_final and rendered.prefill == prefill
    assert rendered.messages[-1] == AssistantMessage(content=prefill)
    reply = f.parse_completion(with_prefill(Completion(text=continuation), rendered.prefill))
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_tool_choice_none_and_unknown() -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Paris"})
    msgs = [UserMessage(content="Q"), AssistantMessage(tool_calls=(call,)),
            ToolMessage(tool_call_id=call.id, name="get_weather", content="sunny")]
    rendered = Qwen3CoderFormat(tool_choice="none").render(msgs, [WEATHER])
    assert [m.role for m in rendered.messages] == ["user"]
    assert "<tool_call>" not in rendered.messages[0].content and "# Tools" not in rendered.messages[0].content
    with pytest.raises(ConfigError, match="nope"):
        Qwen3CoderFormat(tool_choice="nope").render(msgs, [WEATHER])


def test_registered() -> None:
    assert isinstance(get_format("qwen3_coder"), Qwen3CoderFormat)


# ------------------------------------------------------------------------------------- properties

MANY = settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

PIECES = [
    "<tool_call>", "<tool_call>\n", "</tool_call>", "\n</tool_call>", "<function=", "<function=get_weather>",
    "<function=python>\n", "</function>", "\n</function>\n", "<parameter=", "<parameter=days>", "<parameter=city>\n",
    "<parameter=opts>\n", "<parameter=metric>\n", "</parameter>", "\n</parameter>\n", ">", "\n", " ", "3", "true",
    "null", "{", "}", "[1,", '{"a": 1}', "Paris", "巴黎", "<think>", "</think>", "<tool_response>", "x" * 5, "😀",
    "\x00",
]  # fmt: skip


def _reply(data: bytes) -> str:
    return "".join(PIECES[b % len(PIECES)] if b < 200 else chr(0x4E00 + b) for b in data)


REPLIES = st.binary(min_size=1, max_size=64).map(_reply)
CODER = fmt()


@MANY
@given(text=REPLIES, finish=st.sampled_from([None, "stop", "length"]))
def test_any_reply_parses_into_well_formed_calls(text: str, finish: str | None) -> None:
    reply = CODER.parse(text) if finish is None else CODER.parse_completion(Completion(text=text, finish_reason=finish))
    assert isinstance(reply, ParsedReply) and len(reply.tool_calls) <= CODER.max_calls
    for call in reply.tool_calls:
        assert isinstance(call.arguments, dict)
        assert call.arguments_error is None or call.arguments == {}
        assert "<function=" not in call.name


def test_generated_replies_reach_the_call_paths() -> None:
    rng = random.Random(3)
    parsed = [CODER.parse(_reply(rng.randbytes(rng.randint(8, 64)))) for _ in range(2000)]
    with_calls = sum(bool(r.tool_calls) for r in parsed)
    typed = sum(any(isinstance(v, int | dict | bool) for c in r.tool_calls for v in c.arguments.values())
                for r in parsed)
    with_problems = sum(bool(r.problems) for r in parsed)
    assert with_calls > 500 and typed > 50 and with_problems > 300, (with_calls, typed, with_problems)


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "city": st.text(st.characters(blacklist_categories=["Cs"]), max_size=20).filter(
        lambda s: "</parameter>" not in s and "<parameter=" not in s and "</function>" not in s
        and "</tool_call>" not in s and "<function=" not in s
        # Values are raw text: the format's markers cannot be written in one (</think> ends thinking, as in
        # vLLM's qwen3 reasoning parser; a model-written <tool_response> is cut).
        and "</think>" not in s and "<tool_response>" not in s),
    "days": st.integers(-10**12, 10**12),
    "ratio": st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    "metric": st.booleans(),
    "opts": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    "hours": st.lists(st.integers(0, 23), max_size=5),
}


@MANY
@given(args=st.fixed_dictionaries({}, optional=VALUES), n=st.integers(1, 3))
def test_render_calls_reads_back_the_same(args: dict[str, Any], n: int) -> None:
    calls = [ToolCall(name="get_weather", arguments=args) for _ in range(n)]
    reply = CODER.parse(CODER.render_calls(calls))
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [(c.name, c.arguments) for c in calls]
    assert reply.content == ""


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>\n<function=get_weather>\n<parameter=city>\n" + "x" * 1_000_000,  # a value never closed
        "<function=" * 100_000,  # openings with no name end
        "<tool_call>\n<function=f>\n" + "<parameter=" * 100_000,  # parameters with no key end
        "<tool_call>" * 100_000 + "</tool_call>",
        "<function=get_weather>\n<parameter=opts>\n" + "{" * 200_000,  # deep JSON in an object parameter
        "</parameter>" * 100_000,
    ],
    ids=["long_value", "function_openings", "parameter_openings", "call_openings", "deep_json", "closers"],
)
def test_hostile_replies_read_as_bounded_results(text: str) -> None:
    reply = fmt().parse_completion(Completion(text=text, finish_reason="length"))
    assert len(reply.tool_calls) <= 64 and len(reply.problems) <= 33  # 32 + the token-limit note
    for call in reply.tool_calls:
        assert call.arguments_error is None or call.arguments == {}
