"""`UsageLimits`: hard caps on what one run may spend, checked before each model call and each tool call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.types import Usage


class UsageLimits(BaseModel):
    """Hard limits for one run (pydantic-ai's ``UsageLimits`` as the model); ``None``: no limit.

    A run that reaches one ends with status ``limit`` naming it, keeping everything done so far in its
    result and transcript; resuming it with larger limits carries on where it stopped.

    Attributes:
        max_model_calls: Model calls (steps) in the run, resumed parts included.
        max_tool_calls: Tool calls run.
        max_input_tokens_total: Prompt tokens over all model calls.
        max_output_tokens_total: Completion tokens over all model calls.
        max_wall_seconds: Seconds since this run (or this resume) started.

    Raises:
        ValueError: A negative limit (pydantic's ``ValidationError`` is a ``ValueError``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_model_calls: int | None = Field(default=None, ge=0)
    max_tool_calls: int | None = Field(default=None, ge=0)
    max_input_tokens_total: int | None = Field(default=None, ge=0)
    max_output_tokens_total: int | None = Field(default=None, ge=0)
    max_wall_seconds: float | None = Field(default=None, ge=0)


@dataclass
class Spent:
    """What a run has spent so far, compared against `UsageLimits`."""

    model_calls: int = 0
    tool_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)


def before_model_call(limits: UsageLimits | None, spent: Spent) -> str | None:
    """The limit that forbids another model call, as a sentence; ``None`` when the call may go ahead."""
    if limits is None:
        return None
    if limits.max_model_calls is not None and spent.model_calls >= limits.max_model_calls:
        return f"max_model_calls ({limits.max_model_calls}) reached"
    if limits.max_input_tokens_total is not None and spent.usage.prompt_tokens >= limits.max_input_tokens_total:
        return f"max_input_tokens_total ({limits.max_input_tokens_total}) reached: {spent.usage.prompt_tokens} used"
    if (limits.max_output_tokens_total is not None
            and spent.usage.completion_tokens >= limits.max_output_tokens_total):
        return (f"max_output_tokens_total ({limits.max_output_tokens_total}) reached: "
                f"{spent.usage.completion_tokens} used")
    return _wall(limits, spent)


def before_tool_calls(limits: UsageLimits | None, spent: Spent, n: int) -> str | None:
    """The limit that forbids running ``n`` more tool calls; ``None`` when they may all run."""
    if limits is None:
        return None
    if limits.max_tool_calls is not None and spent.tool_calls + n > limits.max_tool_calls:
        return f"max_tool_calls ({limits.max_tool_calls}) reached: {spent.tool_calls} run, {n} more asked for"
    return _wall(limits, spent)


def _wall(limits: UsageLimits, spent: Spent) -> str | None:
    if limits.max_wall_seconds is not None and time.monotonic() - spent.started >= limits.max_wall_seconds:
        return f"max_wall_seconds ({limits.max_wall_seconds:g}) reached"
    return None
