"""Core types every part of qwenkit speaks: chat messages, tool calls, tool specs, token usage.

This module imports nothing else from qwenkit, so any module may import it without a cycle.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def new_call_id() -> str:
    """Return a fresh tool-call id in the OpenAI style (``call_`` + 24 hex digits)."""
    return f"call_{uuid.uuid4().hex[:24]}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolCall(_Frozen):
    """One call of a tool requested by the model.

    Attributes:
        id: Identifier that ties the call to its result message.
        name: Tool name exactly as the model wrote it (dots allowed, e.g. ``math.factorial``).
        arguments: Parsed arguments. Empty when they could not be parsed (see ``arguments_error``).
        raw_arguments: The argument text as the model wrote it, kept for transcripts and scoring.
        arguments_error: Why the arguments could not be parsed into an object, if they could not.
    """

    id: str = Field(default_factory=new_call_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str = ""
    arguments_error: str | None = None


class ToolSpec(_Frozen):
    """What the model is told about a tool.

    Attributes:
        name: Exact name the model must write (dots allowed).
        description: What the tool is for.
        parameters: JSON schema of the arguments object.
        human_name: Display name used by Qwen's ReAct template ("the {human_name} API").
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    human_name: str = ""

    @property
    def display_name(self) -> str:
        """The name shown in prose templates: ``human_name``, else ``name``."""
        return self.human_name or self.name

    def openai_schema(self) -> dict[str, Any]:
        """Return the OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class Usage(_Frozen):
    """Token counts reported by a backend; all zero when the backend does not report them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class SystemMessage(_Frozen):
    """Instructions for the model."""

    role: Literal["system"] = "system"
    content: str


class UserMessage(_Frozen):
    """A turn written by the user."""

    role: Literal["user"] = "user"
    content: str


class AssistantMessage(_Frozen):
    """A turn written by the model, as parsed by a prompt format.

    Attributes:
        content: Text for the reader: the answer, or text the model wrote around its calls.
        reasoning: The model's thinking where the format separates it (ReAct's ``Thought:``).
        tool_calls: The calls the model made in this turn, in order.
    """

    role: Literal["assistant"] = "assistant"
    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


class ToolMessage(_Frozen):
    """The observation returned to the model for one tool call."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str
    content: str


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]
"""Any chat message; pydantic picks the class by ``role``."""


class Completion(_Frozen):
    """One reply of a chat model, before any prompt format has parsed it.

    Attributes:
        text: The generated text (never ``None``; empty when the model produced only native tool calls).
        tool_calls: Calls returned by a server's own tool parser (native format only).
        finish_reason: ``stop``, ``length``, ``tool_calls`` or whatever the backend said.
        stop_word: The stop word that ended generation, when the backend reports it.
        usage: Token counts.
        reasoning: Thinking the server returned apart from the text (vLLM's ``reasoning_content`` with a
            reasoning parser); empty when the thinking, if any, is inside ``text``.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    stop_word: str | None = None
    usage: Usage = Usage()
    reasoning: str = ""
