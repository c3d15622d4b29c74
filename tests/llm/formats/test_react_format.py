"""ReAct format: parsing replies and rendering multi-step turns."""

from __future__ import annotations

import pytest

from qwenkit.llm.formats import ParsedReply, ReActFormat
from qwenkit.types import (
    AssistantMessage,
    Completion,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

FMT = ReActFormat()
CODE_TOOL = ToolSpec(
    name="python",
    description="Run Python.",
    parameters={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
)


def calls(reply: ParsedReply) -> list[tuple[str, dict[str, object], str | None]]:
    return [(c.name, c.arguments, c.arguments_error) for c in reply.tool_calls]


def test_single_call() -> None:
    reply = FMT.parse('Thought: I need 5!.\nAction: math.factorial\nAction Input: {"n": 5}\nObservation:')
    assert reply.reasoning == "I need 5!."
    assert reply.content == ""
    assert calls(reply) == [("math.factorial", {"n": 5}, None)]
    assert reply.tool_calls[0].raw_arguments == '{"n": 5}'
    assert reply.problems == []


def test_parallel_calls() -> None:
    text = (
        "Thought: I need both.\n"
        'Action: math.factorial\nAction Input: {"n": 5}\n'
        'Action: get_weather\nAction Input: {"city": "Paris", "unit": "celsius"}\n'
    )
    reply = FMT.parse(text)
    assert calls(reply) == [
        ("math.factorial", {"n": 5}, None),
        ("get_weather", {"city": "Paris", "unit": "celsius"}, None),
    ]
    assert reply.tool_calls[0].id != reply.tool_calls[1].id


def test_final_answer() -> None:
    reply = FMT.parse("Thought: I now know the final answer\nFinal Answer: 5! is 120.")
    assert (reply.content, reply.reasoning, reply.tool_calls) == ("5! is 120.", "I now know the final answer", [])


def test_continuation_after_thought() -> None:
    # An open turn ends with "\nThought:", so the model continues without writing the marker.
    answer = FMT.parse(" I now know the final answer.\nFinal Answer: 120, and it is sunny.")
    assert (answer.content, answer.reasoning) == ("120, and it is sunny.", "I now know the final answer.")
    call = FMT.parse(' I also need the weather.\nAction: get_weather\nAction Input: {"city": "Paris"}')
    assert call.reasoning == "I also need the weather." and call.content == ""
    assert calls(call) == [("get_weather", {"city": "Paris"}, None)]


def test_plain_reply_is_the_answer() -> None:
    reply = FMT.parse("Hello! How can I help?")
    assert (reply.content, reply.tool_calls, reply.problems) == ("Hello! How can I help?", [], [])
    thought_only = FMT.parse("Thought: it is 120.")
    assert thought_only.content == "it is 120." and thought_only.problems


def test_text_before_a_call_is_content() -> None:
    reply = FMT.parse(
        'Let me look that up.\nThought: use the tool\nAction: get_weather\nAction Input: {"city": "Paris"}'
    )
    assert reply.content == "Let me look that up."
    assert reply.reasoning == "use the tool"
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None)]


@pytest.mark.parametrize("ending", ["\nObservation:", "\nObservation:\n", "\n", "", "\nObservation", "\nObserv"])
def test_swallowed_stop_word(ending: str) -> None:
    base = 'Thought: x\nAction: math.factorial\nAction Input: {"n": 5}'
    full = FMT.parse(base + "\nObservation:")
    reply = FMT.parse(base + ending)
    assert calls(reply) == calls(full) == [("math.factorial", {"n": 5}, None)]
    assert reply.tool_calls[0].raw_arguments == full.tool_calls[0].raw_arguments
    assert (reply.content, reply.reasoning, reply.problems) == (full.content, full.reasoning, full.problems)


def test_hallucinated_observation_is_cut() -> None:
    reply = FMT.parse(
        'Thought: x\nAction: a\nAction Input: {"q": 1}\nObservation: made up\nThought: y\nFinal Answer: z'
    )
    assert calls(reply) == [("a", {"q": 1}, None)]
    assert reply.content == "" and reply.problems


@pytest.mark.parametrize(
    "args",
    [
        "{'city': 'Paris'}",
        '{"city": "Paris",}',
        '{"city": "Paris"',
        "{city: 'Paris'}",
        '```json\n{"city": "Paris"}\n```',
    ],
)
def test_broken_json_is_repaired(args: str) -> None:
    reply = FMT.parse(f"Thought: x\nAction: get_weather\nAction Input: {args}")
    assert calls(reply) == [("get_weather", {"city": "Paris"}, None)]
    assert reply.tool_calls[0].raw_arguments == args


def test_fenced_code_argument() -> None:
    reply = FMT.parse(
        "Thought: run it\nAction: python\nAction Input: \n```py\nimport math\nprint(math.factorial(5))\n```"
    )
    assert calls(reply) == [("python", {"code": "import math\nprint(math.factorial(5))"}, None)]


def test_bad_arguments_are_an_error_the_model_can_fix() -> None:
    reply = FMT.parse("Thought: x\nAction: get_weather\nAction Input: Paris")
    [call] = reply.tool_calls
    assert call.name == "get_weather" and call.arguments == {}
    assert call.arguments_error and call.raw_arguments == "Paris"


def test_unknown_tool_name_passes_through() -> None:
    reply = FMT.parse('Thought: x\nAction: no_such_tool\nAction Input: {"a": 1}')
    assert calls(reply) == [("no_such_tool", {"a": 1}, None)]


def test_action_without_input() -> None:
    reply = FMT.parse("Thought: x\nAction: get_time\n")
    assert calls(reply) == [("get_time", {}, None)] and reply.problems


def test_think_block() -> None:
    reply = FMT.parse("<think>\nLet me think.\n</think>\n\nThought: x\nFinal Answer: y")
    assert reply.content == "y" and reply.reasoning == "Let me think.\n\nx"


def test_dotted_names_round_trip() -> None:
    call = ToolCall(name="math.factorial", arguments={"n": 5}, raw_arguments='{"n": 5}')
    rendered = FMT.render(
        [UserMessage(content="5!?"), AssistantMessage(reasoning="compute", tool_calls=(call,))],
        [ToolSpec(name="math.factorial")],
    )
    reply = FMT.parse(rendered.messages[-1].content)
    assert calls(reply) == [("math.factorial", {"n": 5}, None)]
    assert reply.reasoning == "compute"


def test_multi_step_open_turn_is_folded_and_continued() -> None:
    a = ToolCall(id="a", name="math.factorial", arguments={"n": 5}, raw_arguments='{"n": 5}')
    b = ToolCall(id="b", name="get_weather", arguments={"city": "Paris"})  # no raw text: JSON is written
    rendered = FMT.render(
        [
            SystemMessage(content="S"),
            UserMessage(content="Q"),
            AssistantMessage(reasoning="first 5!", tool_calls=(a,)),
            ToolMessage(tool_call_id="a", name="math.factorial", content="120\n"),
            AssistantMessage(reasoning="now the weather", tool_calls=(b,)),
            ToolMessage(tool_call_id="b", name="get_weather", content="Sunny"),
        ],
        [ToolSpec(name="math.factorial"), ToolSpec(name="get_weather")],
    )
    assert [m.role for m in rendered.messages] == ["system", "user", "assistant"]
    assert rendered.messages[-1].content == (
        'Thought: first 5!\nAction: math.factorial\nAction Input: {"n": 5}\nObservation: 120\n'
        'Thought: now the weather\nAction: get_weather\nAction Input: {"city": "Paris"}\nObservation: Sunny\n'
        "Thought:"
    )
    assert rendered.continue_final


def test_parallel_results_are_matched_by_id() -> None:
    a = ToolCall(id="a", name="f", raw_arguments="{}")
    b = ToolCall(id="b", name="g", raw_arguments="{}")
    rendered = FMT.render(
        [
            UserMessage(content="Q"),
            AssistantMessage(tool_calls=(a, b)),
            ToolMessage(tool_call_id="b", name="g", content="B"),
            ToolMessage(tool_call_id="a", name="f", content="A"),
        ],
        [ToolSpec(name="f"), ToolSpec(name="g")],
    )
    assert rendered.messages[-1].content == (
        "Thought:\nAction: f\nAction Input: {}\nObservation: A\nAction: g\nAction Input: {}\nObservation: B\nThought:"
    )


def test_code_tool_is_asked_for_a_code_block() -> None:
    rendered = FMT.render([UserMessage(content="Q")], [CODE_TOOL])
    assert rendered.messages[0].content.splitlines()[2] == (
        "python: Call this tool to interact with the python API. What is the python API useful for? Run Python. "
        'Parameters: {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]} '
        "Enclose the code within triple backticks (`) at the beginning and end of the code."
    )
    call = ToolCall(name="python", arguments={"code": "print(1)"}, raw_arguments="```py\nprint(1)\n```")
    rendered = FMT.render([UserMessage(content="Q"), AssistantMessage(reasoning="r", tool_calls=(call,))], [CODE_TOOL])
    assert rendered.messages[-1].content == "Thought: r\nAction: python\nAction Input: \n```py\nprint(1)\n```"


def test_without_tools_the_conversation_is_plain() -> None:
    rendered = FMT.render(
        [UserMessage(content="Hi"), AssistantMessage(content="Hello"), UserMessage(content="Bye")], []
    )
    assert [m.content for m in rendered.messages] == ["Hi", "Hello", "Bye"]
    assert not rendered.continue_final


def test_parse_completion_marks_a_call_cut_by_the_token_limit() -> None:
    text = 'Thought: x\nAction: python\nAction Input: {"code": "print(1'
    assert FMT.parse_completion(Completion(text=text, finish_reason="stop")).tool_calls[0].arguments_error is None
    cut = FMT.parse_completion(Completion(text=text, finish_reason="length"))
    assert cut.tool_calls[0].arguments_error and cut.tool_calls[0].arguments == {}
