"""The typed outcome of one step of the loop (internal: the loop's own bookkeeping, not an event)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from qwenkit.types import AssistantMessage, Usage


class ToolStep(BaseModel):
    """Outcome of a step in which the model called tools (the calls are in ``message``; not run yet)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["tools"] = "tools"
    message: AssistantMessage
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
