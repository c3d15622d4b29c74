"""Typed events an agent run emits, and the run's final result (`RunResult`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from qwenkit.tools.base import ToolResult
from qwenkit.types import AssistantMessage, Message, ToolCall, Usage

RunStatus = Literal[
    "completed", "max_steps", "error", "awaiting_approval", "limit", "output_invalid", "empty_answer"
]
"""How a run ended. Resumable: ``error``, ``awaiting_approval`` and ``limit``; final: the others."""

RESUMABLE_STATUSES: frozenset[str] = frozenset({"error", "awaiting_approval", "limit"})


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
    tool_calls_done: int = 0
    usage: Usage = Usage()


class TextDelta(_Event):
    """A piece of the model's reply as it streams (raw text, markers included)."""

    type: Literal["text_delta"] = "text_delta"
    step: int
    text: str


class ReasoningDelta(_Event):
    r"""A piece of the model's thinking as it streams (Qwen3's ``<think>`` text, or the server's
    ``reasoning_content``), apart from the answer's `TextDelta`\ s."""

    type: Literal["reasoning_delta"] = "reasoning_delta"
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


class ContextTrimmed(_Event):
    """The conversation did not fit the context window; this step's prompt was cut (the record keeps all).

    Attributes:
        tokens_before: Tokens the whole conversation would take.
        tokens_after: Tokens the cut prompt takes.
        budget: The most the prompt may take (``max_input_tokens`` less the reply's ``max_tokens``).
        shortened: Old observations shortened.
        dropped: Old messages dropped.
        estimated: Token counts are the stated estimate, not the model's tokenizer.
    """

    type: Literal["context_trimmed"] = "context_trimmed"
    step: int
    tokens_before: int
    tokens_after: int
    budget: int
    shortened: int
    dropped: int
    estimated: bool


class ApprovalRequested(_Event):
    """The run stopped: these calls need a person's approval before they may run (see `Agent.resume`)."""

    type: Literal["approval_requested"] = "approval_requested"
    step: int
    calls: list[ToolCall]


class ApprovalDecision(_Event):
    """A person's decision on one call, recorded when a run is resumed with ``approvals``."""

    type: Literal["approval_decision"] = "approval_decision"
    call_id: str
    approved: bool
    reason: str = ""


class OutputRetry(_Event):
    """The final answer was not accepted — empty, or invalid for the agent's ``output_type`` — and the model
    is asked again with ``message``."""

    type: Literal["output_retry"] = "output_retry"
    step: int
    errors: str
    retries_left: int
    message: str = ""  # the user turn sent back to the model (rebuilt into the conversation on resume)


class RunResult(BaseModel):
    """What a run returns.

    Attributes:
        answer: The final answer's text; with status ``max_steps`` the answer to the extra call made after
            the steps ran out, if made.
        status: ``completed``; ``max_steps`` (the model kept calling tools); ``error`` (see ``error``);
            ``awaiting_approval`` (see ``pending_approvals``); ``limit`` (a `UsageLimits` limit was reached,
            named in ``error``); ``output_invalid`` (the answer never validated against ``output_type``);
            ``empty_answer`` (the model's final reply was empty, also when asked once more).
        error: What went wrong, for every status but ``completed`` and ``max_steps``.
        output: The answer as an ``output_type`` object when the agent has one (else the answer text).
        conversation_id: The conversation this run belonged to.
        messages: The whole conversation, including the final assistant turn.
        steps: Number of model calls made (the extra one after the steps ran out included).
        tool_calls: Number of tool calls run.
        usage: Tokens used over all steps.
        pending_approvals: With ``awaiting_approval``: the calls waiting for a decision.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: str
    status: RunStatus
    error: str | None = None
    output: Any = None
    conversation_id: str
    messages: list[Message] = Field(default_factory=list)
    steps: int
    tool_calls: int = 0
    usage: Usage = Usage()
    pending_approvals: list[ToolCall] = Field(default_factory=list)


class NestedEvent(_Event):
    """An event of a run started by a tool (an agent used as a tool), nested under the call that started it.

    ``event`` is the inner run's own event; its ``conversation_id`` (in its `RunStarted`) is the inner
    conversation's.
    """

    type: Literal["nested"] = "nested"
    step: int
    call_id: str
    tool_name: str
    event: Event


class RunFinished(_Event):
    """Last event: the run's result."""

    type: Literal["run_finished"] = "run_finished"
    result: RunResult


Event = Annotated[
    RunStarted | RunResumed | TextDelta | ReasoningDelta | AssistantTurn | ToolCallEvent | ToolResultEvent | FinalAnswer
    | StepError | ContextTrimmed | ApprovalRequested | ApprovalDecision | OutputRetry | NestedEvent | RunFinished,
    Field(discriminator="type"),
]
"""Any event of a run; pydantic picks the class by ``type``."""

NestedEvent.model_rebuild()
