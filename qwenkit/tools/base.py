"""The tool contract: what a tool receives (`ToolContext`) and returns (`ToolOutput`), and what the loop records
(`ToolResult`).

Glossary: `ToolOutput` is what a tool returns; `ToolResult` is the loop's record of one call (observation text,
ok, timing); `ToolResultEvent` is the event carrying a `ToolResult`; `ToolMessage` is the observation as a
chat message for the next prompt.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeVar

from qwenkit.types import ToolSpec, Usage


class ModelRetry(Exception):
    """Raise inside a tool to send ``message`` back to the model so it can try again.

    Any other exception from a tool is also turned into an observation (with its type and message);
    `ModelRetry` is for errors you phrase for the model on purpose.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


DepsT = TypeVar("DepsT", default=Any)
"""The type of the application's own object handed to tools (`ToolContext.deps`)."""


@dataclass(frozen=True, slots=True)
class ToolContext(Generic[DepsT]):
    """What a tool knows about the run that called it. Declare ``ctx: ToolContext[MyDeps]`` to get it.

    Attributes:
        conversation_id: Stable id of the conversation; stateful tools (the code interpreter) key
            their per-conversation state on it.
        call_id: Id of the tool call being executed.
        deps: The application's own object given to ``Agent(deps=...)`` or ``run(..., deps=...)``
            (a database handle, an HTTP client, settings); ``None`` when none was given.
        timeout: Seconds this call may take (``None``: no limit). A tool with ``handles_timeout`` applies
            it itself (the code interpreter interrupts its cell); for others the registry enforces it.
        step: The model call (1-based) whose reply asked for this tool call; 0 outside a run.
        agent_name: The name of the agent running the tool.
        emit: Puts an event of a run the tool starts itself (an agent used as a tool) into the calling
            run's stream, nested under this call; ``None`` outside a run.
    """

    conversation_id: str
    call_id: str
    deps: DepsT = None  # type: ignore[assignment]  # no deps given: None, whatever DepsT says
    timeout: float | None = None
    step: int = 0
    agent_name: str = "agent"
    emit: Callable[[Any], None] | None = None


ApprovalRule = Callable[[dict[str, Any], ToolContext], bool]
"""Decides per call whether a person must approve it, from the call's raw arguments and context."""


class ToolOutput(BaseModel):
    """A tool's own return value, richer than plain text.

    Attributes:
        text: The observation the model reads.
        images: Paths of image files the tool produced.
        data: Structured payload for the caller (not shown to the model).
        is_error: Whether the tool considers this output a failure (shown to the model as such).
        usage: Model tokens the tool itself spent (an agent used as a tool); added to the run's usage.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    images: list[str] = Field(default_factory=list)
    data: Any = None
    is_error: bool = False
    usage: Usage = Usage()


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
    usage: Usage = Usage()


class Tool(ABC):
    """Base class for tools written as classes.

    Subclasses set `spec` and implement `run`; `args_model`, when set, validates the arguments before
    `run` is called (function tools made with `@tool` set it from the signature).

    Attributes:
        spec: What the model is told.
        args_model: Pydantic model that validates the arguments, or ``None`` to pass them unchecked.
        timeout: Seconds before the call is stopped (``None``: no limit).
        handles_timeout: The tool applies `ToolContext.timeout` itself and stops cleanly (the code
            interpreter interrupts its kernel); the registry then only keeps a safety deadline a little
            later. False: the registry cancels the call at the deadline.
        sequential: Calls of this tool share state that depends on order: when the model writes several
            calls in one turn, they run one after another in the order written instead of concurrently.
        timeout_margin: With ``handles_timeout``: how long after its limit a call may still take to stop
            (interrupting, restarting, a cold start before the limit's clock starts); the registry's safety
            deadline is at least this late.
        requires_approval: A person must approve each call before it runs: ``True``, or a function of the
            call's arguments and context deciding per call. The run stops with status
            ``awaiting_approval``; `Agent.resume` carries on with the decisions.
    """

    spec: ToolSpec
    args_model: type[BaseModel] | None = None
    timeout: float | None = None
    handles_timeout: bool = False
    timeout_margin: float = 0.0
    sequential: bool = False
    requires_approval: bool | ApprovalRule = False

    def needs_approval(self, args: dict[str, Any], ctx: ToolContext) -> bool:
        """Whether this call must wait for a person's decision (see ``requires_approval``)."""
        rule = self.requires_approval
        return bool(rule(args, ctx)) if callable(rule) else bool(rule)

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

    def close_now(self) -> bool:
        """Release what the tool holds right away, without an event loop (an agent dropped unclosed).

        Called from a finaliser, so it must not block or await: kill processes, close files. Default:
        nothing to release.

        Returns:
            Whether anything was still held (the caller then warns that ``aclose`` was not called).
        """
        return False


@runtime_checkable
class Toolset(Protocol):
    """A source of tools that must be started first, such as an MCP server (`qwenkit.mcp.MCPServer`).

    An `Agent` given a toolset asks it for its tools on its first run and closes it in ``aclose``.
    """

    async def tools(self) -> list[Tool]:
        """Start if needed, then list the tools."""
        ...

    async def aclose(self) -> None:
        """Stop, releasing whatever was started."""
        ...
