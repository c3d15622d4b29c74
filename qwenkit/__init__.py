"""qwenkit: an agent and tool-use framework for Qwen chat models.

Everything a user writes in the README's and the examples' code is importable from here; submodules hold
the rest. `qwenkit.testing` has the public test models (`ScriptedModel`, `FunctionModel`, `TestModel`).
"""

from qwenkit.agents import (
    Agent,
    ApprovalDecision,
    ApprovalRequested,
    AssistantTurn,
    Event,
    FinalAnswer,
    OutputRetry,
    RunFinished,
    RunResult,
    RunResumed,
    RunStarted,
    StepError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
    UsageLimits,
    load_transcript,
)
from qwenkit.errors import (
    BenchError,
    ConfigError,
    KernelStartError,
    ModelError,
    PullError,
    QwenkitError,
    SandboxError,
    SandboxUnavailable,
    SessionClosed,
    TranscriptError,
    TranscriptLocked,
)
from qwenkit.llm import ChatModel, ChatRequest, OpenAICompatible, Sampling
from qwenkit.llm.formats import PromptFormat, get_format
from qwenkit.llm.local import LocalModel
from qwenkit.sandbox import KernelPool, KernelSession
from qwenkit.tools import ModelRetry, Tool, ToolContext, ToolOutput, ToolRegistry, ToolResult, tool
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
from qwenkit.types import (
    AssistantMessage,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    Usage,
    UserMessage,
)

__all__ = [
    "Agent",
    "ApprovalDecision",
    "ApprovalRequested",
    "AssistantMessage",
    "AssistantTurn",
    "BenchError",
    "ChatModel",
    "ChatRequest",
    "CodeInterpreter",
    "Completion",
    "ConfigError",
    "Event",
    "FinalAnswer",
    "KernelPool",
    "KernelSession",
    "KernelStartError",
    "LocalModel",
    "Message",
    "ModelError",
    "ModelRetry",
    "OpenAICompatible",
    "OutputRetry",
    "PromptFormat",
    "PullError",
    "QwenkitError",
    "RunFinished",
    "RunResult",
    "RunResumed",
    "RunStarted",
    "Sampling",
    "SandboxError",
    "SandboxUnavailable",
    "SessionClosed",
    "StepError",
    "SystemMessage",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallEvent",
    "ToolContext",
    "ToolMessage",
    "ToolOutput",
    "ToolRegistry",
    "ToolResult",
    "ToolResultEvent",
    "ToolSpec",
    "TranscriptError",
    "TranscriptLocked",
    "Usage",
    "UsageLimits",
    "UserMessage",
    "get_format",
    "load_transcript",
    "tool",
]
__version__ = "0.1.0"
