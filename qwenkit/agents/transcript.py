"""Write a run's events to a JSON Lines transcript as they happen, and read one back to resume."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from qwenkit.agents.conversation import tool_message
from qwenkit.agents.events import (
    AssistantTurn,
    Event,
    RunFinished,
    RunResult,
    RunStarted,
    TextDelta,
    ToolResultEvent,
)
from qwenkit.types import AssistantMessage, Message, ToolMessage, Usage

_EVENT = TypeAdapter(Event)


class TranscriptWriter:
    """Appends one JSON line per event and flushes it, so a crash or Ctrl-C loses nothing written.

    Text deltas are not written: the `AssistantTurn` that follows carries the whole raw reply.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_partial_line(self.path)
        self._fh: IO[str] = self.path.open("a", encoding="utf-8")

    def write(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            return
        self._fh.write(event.model_dump_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a crash, so appended events start on a line of their own."""
    if not path.is_file():
        return
    with path.open("rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


class TranscriptState(BaseModel):
    """Where a transcript left off.

    Attributes:
        conversation_id: The run's conversation id.
        messages: The conversation rebuilt from the events (tool results in call order).
        steps_done: Model calls already made.
        usage: Tokens already used.
        finished: The result, if the run had finished (a run that ended in ``error`` can be resumed).
    """

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    messages: list[Message]
    steps_done: int
    usage: Usage = Usage()
    finished: RunResult | None = None


def read_events(path: str | Path) -> list[Event]:
    """Read a transcript's events, skipping a last line cut short by a crash.

    Raises:
        ValueError: A line other than the last is not a valid event.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    events: list[Event] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(_EVENT.validate_json(line))
        except ValidationError as err:  # pydantic reports invalid JSON as a ValidationError too
            if n == len(lines):
                break  # the write was interrupted; the step it recorded will be redone
            raise ValueError(f"{path}:{n}: not a qwenkit transcript event ({err.error_count()} errors)") from err
    return events


def _in_call_order(messages: list[Message]) -> list[Message]:
    """Tool results are logged as they finish; the conversation needs them in call order."""
    out = list(messages)
    for i, msg in enumerate(out):
        if isinstance(msg, AssistantMessage) and msg.tool_calls:
            order = {c.id: k for k, c in enumerate(msg.tool_calls)}
            j = i + 1
            while j < len(out) and isinstance(out[j], ToolMessage):
                j += 1
            block: list[ToolMessage] = [m for m in out[i + 1 : j] if isinstance(m, ToolMessage)]
            block.sort(key=lambda m: order.get(m.tool_call_id, len(order)))
            out[i + 1 : j] = block
    return out


def load_transcript(path: str | Path) -> TranscriptState:
    """Rebuild the conversation a transcript recorded.

    Raises:
        ValueError: The file holds no run (no ``run_started`` event) or a corrupt line.
    """
    events = read_events(path)
    starts = [i for i, e in enumerate(events) if isinstance(e, RunStarted)]
    if not starts:
        raise ValueError(f"{path}: no run_started event; not a qwenkit transcript")
    start = events[starts[-1]]
    assert isinstance(start, RunStarted)
    messages: list[Message] = list(start.messages)
    steps, usage = start.steps_done, start.usage
    finished: RunResult | None = None
    last_word = False
    for e in events[starts[-1] + 1 :]:
        if isinstance(e, AssistantTurn):
            messages.append(e.message)
            steps, usage, last_word = steps + 1, usage + e.usage, e.last_word
        elif isinstance(e, ToolResultEvent):
            messages.append(tool_message(e.result))
        elif isinstance(e, RunFinished) and e.result.status != "error":  # a failed backend may work now
            finished = e.result
    last = messages[-1] if messages else None
    if finished is None and isinstance(last, AssistantMessage) and not last.tool_calls and steps > start.steps_done:
        # The answer was recorded but the process died before the run_finished line.
        finished = RunResult(answer=last.content, status="max_steps" if last_word else "completed",
                             conversation_id=start.conversation_id, messages=messages, steps=steps, usage=usage)
    return TranscriptState(
        conversation_id=start.conversation_id, messages=_in_call_order(messages), steps_done=steps, usage=usage,
        finished=finished,
    )
