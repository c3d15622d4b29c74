"""Typed events an agent run emits, and the run's final result (`RunResult`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

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


class RunResumed(_Event):
    """First event of a resumed run: it carries on from the events already in the transcript.

    Unlike `RunStarted` it does not repeat the conversation, so each resume appends only what is new.
    """

    type: Literal["run_resumed"] = "run_resumed"
    conversation_id: str
    steps_done: int = 0
    usage: Usage = Usage()


class TextDelta(_Event):
    """A piece of the model's reply as it streams (raw text, markers included)."""

    type: Literal["text_delta"] = "text_delta"
    step: int
    text: str


class AssistantTurn(_Event):
    """The model's reply for one step, parsed by the prompt format.

    ``after_max_steps`` marks the extra call made when the steps ran out, asking for a final answer
    (tools withheld, any call dropped).
    """

    type: Literal["assistant_turn"] = "assistant_turn"
    step: int
    message: AssistantMessage
    raw_text: str
    problems: list[str] = Field(default_factory=list)
    usage: Usage = Usage()
    after_max_steps: bool = Field(default=False, validation_alias=AliasChoices("after_max_steps", "last_word"))


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
        answer: The final answer; with status ``max_steps`` the answer to the extra call made after the
            steps ran out, if made.
        status: ``completed``, ``max_steps`` (the model kept calling tools) or ``error``.
        error: What went wrong when status is ``error``.
        conversation_id: The conversation this run belonged to.
        messages: The whole conversation, including the final assistant turn.
        steps: Number of model calls made (the extra one after the steps ran out included).
        usage: Tokens used over all steps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: str
    status: RunStatus
    error: str | None = None
    conversation_id: str
    messages: list[Message] = Field(default_factory=list)
    steps: int
    usage: Usage = Usage()


class RunFinished(_Event):
    """Last event: the run's result."""

    type: Literal["run_finished"] = "run_finished"
    result: RunResult


Event = Annotated[
    RunStarted | RunResumed | TextDelta | AssistantTurn | ToolCallEvent | ToolResultEvent | FinalAnswer
    | StepError | RunFinished,
    Field(discriminator="type"),
]
"""Any event of a run; pydantic picks the class by ``type``."""
