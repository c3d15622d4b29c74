"""Show a run's events in the terminal with rich, as they happen."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape as _escape
from rich.panel import Panel

from qwenkit._untrusted import MAX_JSON_DEPTH, clean_text, json_depth
from qwenkit.agents.events import (
    AssistantTurn,
    Event,
    FinalAnswer,
    ReasoningDelta,
    RunFinished,
    StepError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)

MAX_SHOWN_CHARS = 4000
"""Most characters of one tool call's arguments or one tool result shown in the terminal."""


def _arguments_text(raw: str, arguments: Any) -> str:
    """A call's arguments as the model wrote them, else as JSON (never raising on deep nesting)."""
    if raw:
        return raw
    if json_depth(arguments) > MAX_JSON_DEPTH:  # decided by depth, not by whatever the recursion limit is
        return "[arguments nested too deeply to show]"
    try:
        return json.dumps(arguments, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return "[arguments nested too deeply to show]"


def escape(text: str) -> str:
    """Text from a model or a tool, ready for rich: markup escaped, lone surrogates replaced.

    A lone surrogate cannot be encoded by any terminal; printing one would raise UnicodeEncodeError.
    """
    return _escape(clean_text(text)[0])


class EventPrinter:
    """Prints events for a person: streamed text dimmed, tool calls and results as panels, the answer bold.

    Everything shown is untrusted text: it is escaped for rich and cleaned of lone surrogates.

    Args:
        console: Where to print.
        show_stream: Print the raw streamed text of each step (markers included).
    """

    def __init__(self, console: Console, *, show_stream: bool = True) -> None:
        self.console = console
        self.show_stream = show_stream
        self._streaming = False
        self._streamed: dict[int, list[str]] = {}

    def _end_stream(self) -> None:
        if self._streaming:
            self.console.print()
            self._streaming = False

    def __call__(self, event: Event) -> None:
        match event:
            case ReasoningDelta() if self.show_stream:  # thinking, shown apart from the answer
                self.console.print(escape(event.text), end="", style="dim italic", highlight=False)
                self._streaming = True
            case TextDelta() if self.show_stream:
                self.console.print(escape(event.text), end="", style="dim", highlight=False)
                self._streaming = True
                self._streamed.setdefault(event.step, []).append(event.text)
            case AssistantTurn():
                self._end_stream()
                for problem in event.problems:
                    self.console.print(f"[yellow]parse note:[/yellow] {escape(problem)}", highlight=False)
            case ToolCallEvent():
                self._end_stream()
                args = _arguments_text(event.call.raw_arguments, event.call.arguments)
                self.console.print(Panel(escape(args[:MAX_SHOWN_CHARS]), title=f"call {escape(event.call.name)}",
                                         expand=False, border_style="cyan"))
            case ToolResultEvent():
                r = event.result
                style = "green" if r.ok else "red"
                title = f"{escape(r.name)} → {'ok' if r.ok else escape(str(r.error_type))} ({r.duration_s:.2f} s)"
                self.console.print(Panel(escape(r.content[:MAX_SHOWN_CHARS]), title=title, expand=False,
                                         border_style=style))
            case FinalAnswer():
                self._end_stream()
                streamed = "".join(self._streamed.get(event.step, []))
                if event.text.strip() not in streamed:  # already on screen as it streamed
                    self.console.print(f"[bold]{escape(event.text)}[/bold]", highlight=False)
            case StepError():
                self._end_stream()
                self.console.print(f"[red]step {event.step} failed:[/red] {escape(event.message)}",
                                   highlight=False)
            case RunFinished():
                res = event.result
                self.console.print(
                    f"[dim]{res.status} · {res.steps} step(s) · {res.usage.total_tokens} tokens[/dim]",
                    highlight=False,
                )
            case _:
                pass
