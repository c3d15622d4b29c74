"""The agent loop, the `Agent` entry point, typed events and transcripts."""

from qwenkit.agents.agent import Agent
from qwenkit.agents.events import (
    ApprovalDecision,
    ApprovalRequested,
    AssistantTurn,
    Event,
    FinalAnswer,
    NestedEvent,
    OutputRetry,
    RunFinished,
    RunResult,
    RunResumed,
    RunStarted,
    StepError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from qwenkit.agents.limits import UsageLimits
from qwenkit.agents.transcript import load_transcript

__all__ = [
    "Agent",
    "ApprovalDecision",
    "ApprovalRequested",
    "AssistantTurn",
    "Event",
    "FinalAnswer",
    "NestedEvent",
    "OutputRetry",
    "RunFinished",
    "RunResult",
    "RunResumed",
    "RunStarted",
    "StepError",
    "TextDelta",
    "ToolCallEvent",
    "ToolResultEvent",
    "UsageLimits",
    "load_transcript",
]
