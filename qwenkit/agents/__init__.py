"""The agent loop, the `Agent` entry point, typed events and transcripts."""

from qwenkit.agents.agent import Agent
from qwenkit.agents.events import (
    AssistantTurn,
    Event,
    FinalAnswer,
    RunFinished,
    RunResult,
    RunResumed,
    RunStarted,
    StepError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from qwenkit.agents.transcript import load_transcript

__all__ = [
    "Agent", "AssistantTurn", "Event", "FinalAnswer", "RunFinished", "RunResult", "RunResumed", "RunStarted",
    "StepError", "TextDelta", "ToolCallEvent", "ToolResultEvent", "load_transcript",
]
