"""Helpers that read or extend a conversation of typed messages."""

from __future__ import annotations

from collections.abc import Sequence

from qwenkit.tools.base import ToolResult
from qwenkit.types import AssistantMessage, Message, ToolCall, ToolMessage


def unanswered_calls(messages: Sequence[Message]) -> list[ToolCall]:
    """Calls of the last assistant turn that have no tool message yet (after a crash, on resume)."""
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if isinstance(msg, AssistantMessage):
            answered = {m.tool_call_id for m in messages[i + 1 :] if isinstance(m, ToolMessage)}
            return [c for c in msg.tool_calls if c.id not in answered]
    return []


def tool_message(result: ToolResult) -> ToolMessage:
    """The message that gives a tool's result back to the model."""
    return ToolMessage(tool_call_id=result.call_id, name=result.name, content=result.content)
