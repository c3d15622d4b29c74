"""The tool contract: what a tool declares (`ToolSpec`), receives (`ToolContext`) and returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelRetry(Exception):
    """Raise inside a tool to send ``message`` back to the model so it can try again.

    Any other exception from a tool is also turned into an observation (with its type and message);
    `ModelRetry` is for errors you phrase for the model on purpose.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolSpec(BaseModel):
    """What the model is told about a tool.

    Attributes:
        name: Exact name the model must write (dots allowed).
        description: What the tool is for.
        parameters: JSON schema of the arguments object.
        human_name: Display name used by Qwen's ReAct template ("the {human_name} API").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    human_name: str = ""

    @property
    def display_name(self) -> str:
        return self.human_name or self.name

    def openai_schema(self) -> dict[str, Any]:
        """Return the OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolContext(BaseModel):
    """What a tool knows about the run that called it.

    Attributes:
        conversation_id: Stable id of the conversation; stateful tools (the code interpreter) key
            their per-conversation state on it.
        call_id: Id of the tool call being executed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str
    call_id: str


class ToolOutput(BaseModel):
    """A tool's own return value, richer than plain text.

    Attributes:
        text: The observation the model reads.
        images: Paths of image files the tool produced.
        data: Structured payload for the caller (not shown to the model).
        is_error: Whether the tool considers this output a failure (shown to the model as such).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    images: list[str] = Field(default_factory=list)
    data: Any = None
    is_error: bool = False


class ToolResult(BaseModel):
    """The outcome of one tool call as the agent loop records it.

    Attributes:
        call_id: Id of the call this answers.
        name: Tool name as the model wrote it.
        content: Observation text given back to the model.
        ok: False when the tool was unknown, the arguments were invalid, it raised or timed out.
        error_type: Exception class name or a qwenkit reason (``UnknownTool``, ``InvalidArguments``,
            ``Timeout``) when not ok.
        images: Image files the tool produced.
        duration_s: Wall-clock time spent in the tool.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: str
    name: str
    content: str
    ok: bool = True
    error_type: str | None = None
    images: list[str] = Field(default_factory=list)
    duration_s: float = 0.0


class Tool(ABC):
    """Base class for tools written as classes.

    Subclasses set `spec` and implement `run`; `args_model`, when set, validates the arguments before
    `run` is called (function tools made with `@tool` set it from the signature).

    Attributes:
        spec: What the model is told.
        args_model: Pydantic model that validates the arguments, or ``None`` to pass them unchecked.
        timeout: Seconds before the call is abandoned (``None``: no limit).
    """

    spec: ToolSpec
    args_model: type[BaseModel] | None = None
    timeout: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput | str:
        """Execute the tool with validated arguments (field values of `args_model`, if any)."""

    async def close_conversation(self, conversation_id: str) -> None:  # noqa: B027 - optional hook
        """Release per-conversation state; called when a conversation ends. Default: nothing."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release everything the tool holds; called when the registry is closed. Default: nothing."""
