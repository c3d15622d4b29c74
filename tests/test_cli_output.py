"""The CLI prints whatever a model or a kernel said without raising: lone surrogates, markup, deep JSON."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest
from rich.console import Console

from qwenkit._cli.output import event_json, make_stdio_safe, print_error
from qwenkit.agents.console import MAX_SHOWN_CHARS, EventPrinter
from qwenkit.agents.events import (
    AssistantTurn,
    Event,
    FinalAnswer,
    RunFinished,
    RunResult,
    StepError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from qwenkit.tools.base import ToolResult
from qwenkit.types import AssistantMessage, ToolCall, UserMessage

SURROGATE = "lone \ud800 surrogate \udcff"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


def hostile_events() -> list[Event]:
    deep_call = ToolCall(id="c1", name="calculator", arguments=nested(2000))
    message = AssistantMessage(content=SURROGATE, tool_calls=(deep_call,))
    result = RunResult(answer=SURROGATE, status="completed", conversation_id="c",
                       messages=[UserMessage(content=SURROGATE), message], steps=1)
    return [
        TextDelta(step=1, text=SURROGATE + " [bold]not markup[/bold] [/]"),
        AssistantTurn(step=1, message=message, raw_text=SURROGATE, problems=[SURROGATE + " [/oops]"]),
        ToolCallEvent(step=1, call=deep_call),
        ToolCallEvent(step=1, call=ToolCall(name="calc\ud800", raw_arguments="[/x] " + "a" * 100_000)),
        ToolResultEvent(step=1, result=ToolResult(call_id="c1", name="calc[/]", content=SURROGATE, ok=False,
                                                  error_type="Boom[/]")),
        FinalAnswer(step=1, text=SURROGATE + " the end"),
        StepError(step=2, error_type="ModelError", message=SURROGATE + " [red]"),
        RunFinished(result=result),
    ]


def test_json_lines_survive_surrogates_and_deep_arguments() -> None:
    lines = [event_json(e) for e in hostile_events()]
    decoded = [json.loads(line) for line in lines]
    for line in lines:
        line.encode("utf-8")  # a lone surrogate would raise here
        assert "\n" not in line
    assert [d["type"] for d in decoded] == ["text_delta", "assistant_turn", "tool_call", "tool_call", "tool_result",
                                            "final_answer", "step_error", "run_finished"]
    assert decoded[0]["text"].startswith("lone \ufffd surrogate \ufffd")
    # The deep arguments cannot be serialised; the rest of the event still is, with a note in their place.
    assert decoded[2]["call"]["name"] == "calculator" and decoded[2]["call"]["arguments"].startswith("[not shown")
    final = decoded[-1]["result"]
    assert final["answer"] == "lone \ufffd surrogate \ufffd" and final["status"] == "completed"
    assert final["messages"][0]["content"] == "lone \ufffd surrogate \ufffd"


def test_json_lines_of_ordinary_events_are_pydantic_s_own() -> None:
    event = FinalAnswer(step=3, text="ünïcode ok")
    assert event_json(event) == event.model_dump_json()


def strict_console() -> tuple[Console, io.BytesIO]:
    """A console writing to a strict UTF-8 stream: printing a lone surrogate there raises."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    return Console(file=stream, width=100, force_terminal=False, color_system=None), raw


def test_terminal_printer_survives_surrogates_markup_and_deep_arguments() -> None:
    console, raw = strict_console()
    show = EventPrinter(console)
    for event in hostile_events():
        show(event)
    text = raw.getvalue().decode("utf-8")
    assert "lone \ufffd surrogate \ufffd" in text
    assert "[bold]not markup[/bold]" in text and "[/oops]" in text and "Boom[/]" in text
    assert "[arguments nested too deeply to show]" in text
    assert text.count("a") < MAX_SHOWN_CHARS + 200  # 100,000 characters of arguments were cut
    assert "completed · 1 step(s)" in text


def test_error_lines_are_one_line_and_encodable(capsys: pytest.CaptureFixture[str]) -> None:
    print_error("cannot reach\nthe server:\t" + SURROGATE)
    err = capsys.readouterr().err
    assert err == "qwenkit: error: cannot reach the server: lone \ufffd surrogate \ufffd\n"


def test_standard_streams_replace_what_they_cannot_encode(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", stream)
    make_stdio_safe()
    print("π ≈ 3.14 \ud800", file=stream)
    assert raw.getvalue() == b"? ? 3.14 ?\n"
