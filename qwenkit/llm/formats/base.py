"""The `PromptFormat` protocol: how tools and turns are written into a prompt, and read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.types import Completion, Message, ToolCall, ToolSpec


class RenderedPrompt(BaseModel):
    """What a format hands to a backend.

    Attributes:
        messages: The messages to send (tools folded into the system or user text, past calls and
            observations written in the format's own markers).
        stop: Stop words for this format.
        tools: OpenAI ``tools`` definitions; only the native format sets them.
        tool_choice: ``auto``, ``required``, ``none`` or a tool name, with ``tools`` only.
        continue_final: The last message is a partial assistant turn the model continues.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: list[Message]
    stop: list[str] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    continue_final: bool = False


class ParsedReply(BaseModel):
    """A model reply read by a format. Parsing never raises; what went wrong is in ``problems``.

    Attributes:
        content: Text for the reader (the final answer when there are no calls).
        reasoning: The model's thinking, where the format marks it.
        tool_calls: Calls found, in order. A call whose arguments could not be read has
            ``arguments_error`` set; the registry turns it into an observation the model can correct.
        problems: Human-readable notes on what was repaired or could not be read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


@runtime_checkable
class PromptFormat(Protocol):
    """A way of writing tools and tool turns for a model, and of reading its replies."""

    name: str

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> RenderedPrompt:
        """Write the conversation and the tool descriptions in this format."""
        ...

    def parse(self, text: str) -> ParsedReply:
        """Read a reply's text. Must not raise for any string."""
        ...

    def parse_completion(self, completion: Completion) -> ParsedReply:
        """Read a whole reply; text formats call `parse` on its text, native reads its tool calls."""
        ...
