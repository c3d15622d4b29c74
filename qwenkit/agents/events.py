"""Typed events an agent run emits, the typed outcome of each step, and the run's final result."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.tools.base import ToolResult
from qwenkit.types import AssistantMessage, Message, ToolCall, Usage

RunStatus = Literal["completed", "max_steps", "error"]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunStarted(_Event):
    """First event: the conversation the run starts from (enough to resume it).

    ``steps_done`` and ``usage`` are non-zero when the run is a resumed one.
    """

    type: Literal["run_started"] = "run_started"
    conversation_id: str
    messages: list[Message]
    steps_done: int = 0
    usage: Usage = Usage()


class TextDelta(_Event):
    """A piece of the model's reply as it streams (raw text, markers included)."""

    type: Literal["text_delta"] = "text_delta"
    step: int
    text: str


class AssistantTurn(_Event):
    """The model's reply for one step, parsed by the prompt format.

    ``last_word`` marks the extra call made when the steps ran out (tools withheld, calls dropped).
    """

    type: Literal["assistant_turn"] = "assistant_turn"
    step: int
    message: AssistantMessage
    raw_text: str
    problems: list[str] = Field(default_factory=list)
    usage: Usage = Usage()
    last_word: bool = False


class ToolCallEvent(_Event):
    """A tool call is about to run."""

    type: Literal["tool_call"] = "tool_call"
    step: int
    call: ToolCall


class ToolResultEvent(_Event):
    """A tool call finished (successfully or not)."""

    type: Literal["tool_result"] = "tool_result"
    step: int
    result: ToolResult


class FinalAnswer(_Event):
    """The model gave its answer."""

    type: Literal["final_answer"] = "final_answer"
    step: int
    text: str


class StepError(_Event):
    """A step failed in a way that ends the run (the backend failed after its retries)."""

    type: Literal["step_error"] = "step_error"
    step: int
    error_type: str
    message: str


class RunResult(BaseModel):
    """What a run returns.

    Attributes:
        answer: The final answer; with status ``max_steps`` the answer to the last-word call, if made.
        status: ``completed``, ``max_steps`` (the model kept calling tools) or ``error``.
        error: What went wrong when status is ``error``.
        conversation_id: The conversation this run belonged to.
        messages: The whole conversation, including the final assistant turn.
        steps: Number of model calls made (the last-word call included).
        usage: Tokens used over all steps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: str
    status: RunStatus
    error: str | None = None
    conversation_id: str
    messages: list[Message]
    steps: int
    usage: Usage = Usage()


class RunFinished(_Event):
    """Last event: the run's result."""

    type: Literal["run_finished"] = "run_finished"
    result: RunResult


Event = Annotated[
    RunStarted | TextDelta | AssistantTurn | ToolCallEvent | ToolResultEvent | FinalAnswer | StepError
    | RunFinished,
    Field(discriminator="type"),
]
"""Any event of a run; pydantic picks the class by ``type``."""


class ToolStep(BaseModel):
    """Outcome of a step in which the model called tools."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["tools"] = "tools"
    message: AssistantMessage
    results: list[ToolResult]
    usage: Usage = Usage()


class FinalStep(BaseModel):
    """Outcome of a step in which the model answered."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["final"] = "final"
    message: AssistantMessage
    usage: Usage = Usage()


class ErrorStep(BaseModel):
    """Outcome of a step the backend could not complete."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["error"] = "error"
    error_type: str
    message: str


StepOutcome = ToolStep | FinalStep | ErrorStep
