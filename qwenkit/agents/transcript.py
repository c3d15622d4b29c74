"""Write a run's events to a JSON Lines transcript as they happen, and read one back to resume."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from qwenkit._jsonl import iter_lines, repair_tail
from qwenkit.agents.conversation import tool_message
from qwenkit.agents.events import (
    RESUMABLE_STATUSES,
    ApprovalDecision,
    AssistantTurn,
    Event,
    NestedEvent,
    OutputRetry,
    ReasoningDelta,
    RunFinished,
    RunResult,
    RunResumed,
    RunStarted,
    TextDelta,
    ToolResultEvent,
)
from qwenkit.errors import TranscriptError, TranscriptLocked
from qwenkit.types import AssistantMessage, Message, ToolMessage, Usage, UserMessage

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def _is_event(line: str) -> bool:
    try:
        _EVENT.validate_json(line)
    except (ValidationError, ValueError, RecursionError):
        return False
    return True


class TranscriptWriter:
    """Appends one JSON line per event and flushes it, so a crash or Ctrl-C loses nothing written.

    The writer holds an exclusive lock on the file for its whole life: two processes can never run (or
    resume) the same conversation at once. Opening it first cuts off a last line left partial or corrupt by
    a crash, so the events appended after it stay readable. Text deltas are not written: the
    `AssistantTurn` that follows carries the whole raw reply.

    Raises:
        TranscriptLocked: Another run holds the file.
        TranscriptError: The file cannot be opened for writing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] = self.path.open("a", encoding="utf-8")
        except OSError as err:
            raise TranscriptError(f"cannot write the transcript {self.path}: {err.strerror or err}") from err
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            self._fh.close()
            raise TranscriptLocked(
                f"the transcript {self.path} is in use by another run (process); wait for it to end"
            ) from err
        repair_tail(self.path, _is_event)  # under the lock: nobody else is appending

    def write(self, event: Event) -> None:
        """Append ``event`` as one line and flush it to the OS."""
        deltas = (TextDelta, ReasoningDelta)
        if isinstance(event, deltas) or (isinstance(event, NestedEvent) and isinstance(event.event, deltas)):
            return
        try:
            # The result's messages are the conversation the lines above already hold: not written again.
            line = (event.model_dump_json(exclude={"result": {"messages"}}) if isinstance(event, RunFinished)
                    else event.model_dump_json())
        except (PydanticSerializationError, ValueError, RecursionError) as err:
            raise TranscriptError(f"cannot record a {event.type} event in {self.path}: {err}") from err
        self._fh.write(line + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Release the lock and close the file (idempotent)."""
        if not self._fh.closed:
            self._fh.close()  # closing the descriptor releases the flock

    def __del__(self) -> None:  # a writer dropped without close() must not keep the lock
        fh = getattr(self, "_fh", None)
        if fh is not None and not fh.closed:
            fh.close()


class TranscriptState(BaseModel):
    """Where a transcript left off.

    Attributes:
        conversation_id: The run's conversation id.
        messages: The conversation rebuilt from the events (tool results in call order).
        steps_done: Model calls already made.
        tool_calls_done: Tool calls already run.
        usage: Tokens already used.
        decisions: Approval decisions already recorded, by call id.
        finished: The result, if the run had finished (a run that ended in ``error``, ``awaiting_approval``
            or ``limit`` can be resumed).
    """

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    messages: list[Message]
    steps_done: int
    tool_calls_done: int = 0
    usage: Usage = Usage()
    decisions: dict[str, bool | str] = {}
    finished: RunResult | None = None


def read_events(path: str | Path) -> list[Event]:
    """Read a transcript's events, skipping a last line cut short (or left corrupt) by a crash.

    Raises:
        TranscriptError: The file cannot be read, or a line other than the last is not a valid event.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise TranscriptError(f"cannot read the transcript {path}: {err.strerror or err}") from err
    events: list[Event] = []
    for n, line, is_last in iter_lines(data):
        if not line.strip():
            continue
        try:
            events.append(_EVENT.validate_json(line))
        except (ValidationError, ValueError, RecursionError) as err:
            if is_last:
                break  # the write was interrupted; the step it recorded will be redone
            why = f"{err.error_count()} errors" if isinstance(err, ValidationError) else type(err).__name__
            raise TranscriptError(f"{path}:{n}: not a qwenkit transcript event ({why})") from err
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
    """Rebuild the conversation a transcript recorded (its last run, with every resume of it).

    Raises:
        TranscriptError: The file holds no run (no ``run_started`` event) or a corrupt line.
    """
    events = read_events(path)
    starts = [i for i, e in enumerate(events) if isinstance(e, RunStarted)]
    if not starts:
        raise TranscriptError(f"{path}: no run_started event; not a qwenkit transcript")
    start = events[starts[-1]]
    assert isinstance(start, RunStarted)
    messages: list[Message] = list(start.messages)
    steps, usage, tool_calls = start.steps_done, start.usage, 0
    finished: RunResult | None = None
    after_max_steps = False
    seen_results: set[str] = set()
    decisions: dict[str, bool | str] = {}
    for e in events[starts[-1] + 1 :]:
        if isinstance(e, AssistantTurn):
            messages.append(e.message)
            steps, usage, after_max_steps = steps + 1, usage + e.usage, e.after_max_steps
            finished = None
        elif isinstance(e, ToolResultEvent) and e.result.call_id not in seen_results:
            seen_results.add(e.result.call_id)
            messages.append(tool_message(e.result))
            tool_calls += 1
            usage += e.result.usage
        elif isinstance(e, OutputRetry):
            messages.append(UserMessage(content=e.message))
        elif isinstance(e, ApprovalDecision):
            decisions[e.call_id] = e.reason if not e.approved and e.reason else e.approved
        elif isinstance(e, RunResumed):
            finished = None
        elif isinstance(e, RunFinished) and e.result.status not in RESUMABLE_STATUSES:
            finished = e.result.model_copy(update={"messages": list(messages)})
    last = messages[-1] if messages else None
    if finished is None and isinstance(last, AssistantMessage) and not last.tool_calls and steps > start.steps_done:
        # The answer was recorded but the process died before the run_finished line.
        finished = RunResult(answer=last.content, status="max_steps" if after_max_steps else "completed",
                             conversation_id=start.conversation_id, messages=messages, steps=steps,
                             tool_calls=tool_calls, usage=usage)
    return TranscriptState(
        conversation_id=start.conversation_id, messages=_in_call_order(messages), steps_done=steps,
        tool_calls_done=tool_calls, usage=usage, decisions=decisions, finished=finished,
    )


__all__ = ["TranscriptState", "TranscriptWriter", "load_transcript", "read_events"]
