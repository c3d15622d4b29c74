"""qwenkit: an agent and tool-use framework for Qwen chat models.

Everything a user writes in the README's and the examples' code is importable from here; submodules hold
the rest. `qwenkit.testing` has the public test models (`ScriptedModel`, `FunctionModel`, `TestModel`).

Names are imported on first use (PEP 562), so ``import qwenkit`` and the CLI's error paths do not pay for the
OpenAI client or the sandbox until they are needed; the TYPE_CHECKING block keeps the surface explicit for
type checkers and readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwenkit.agents import (
        Agent,
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
    from qwenkit.llm import (
        ChatModel,
        ChatRequest,
        OpenAICompatible,
        Sampling,
    )
    from qwenkit.llm.formats import (
        PromptFormat,
        get_format,
    )
    from qwenkit.llm.local import (
        LocalModel,
    )
    from qwenkit.sandbox import (
        KernelPool,
        KernelSession,
    )
    from qwenkit.tools import (
        ModelRetry,
        Tool,
        ToolContext,
        ToolOutput,
        ToolRegistry,
        ToolResult,
        tool,
    )
    from qwenkit.tools.builtin.code_interpreter import (
        CodeInterpreter,
    )
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

_WHERE: dict[str, str] = {
    "Agent": "qwenkit.agents",
    "ApprovalDecision": "qwenkit.agents",
    "ApprovalRequested": "qwenkit.agents",
    "AssistantMessage": "qwenkit.types",
    "AssistantTurn": "qwenkit.agents",
    "BenchError": "qwenkit.errors",
    "ChatModel": "qwenkit.llm",
    "ChatRequest": "qwenkit.llm",
    "CodeInterpreter": "qwenkit.tools.builtin.code_interpreter",
    "Completion": "qwenkit.types",
    "ConfigError": "qwenkit.errors",
    "Event": "qwenkit.agents",
    "FinalAnswer": "qwenkit.agents",
    "KernelPool": "qwenkit.sandbox",
    "KernelSession": "qwenkit.sandbox",
    "KernelStartError": "qwenkit.errors",
    "LocalModel": "qwenkit.llm.local",
    "Message": "qwenkit.types",
    "ModelError": "qwenkit.errors",
    "ModelRetry": "qwenkit.tools",
    "NestedEvent": "qwenkit.agents",
    "OpenAICompatible": "qwenkit.llm",
    "OutputRetry": "qwenkit.agents",
    "PromptFormat": "qwenkit.llm.formats",
    "PullError": "qwenkit.errors",
    "QwenkitError": "qwenkit.errors",
    "RunFinished": "qwenkit.agents",
    "RunResult": "qwenkit.agents",
    "RunResumed": "qwenkit.agents",
    "RunStarted": "qwenkit.agents",
    "Sampling": "qwenkit.llm",
    "SandboxError": "qwenkit.errors",
    "SandboxUnavailable": "qwenkit.errors",
    "SessionClosed": "qwenkit.errors",
    "StepError": "qwenkit.agents",
    "SystemMessage": "qwenkit.types",
    "TextDelta": "qwenkit.agents",
    "Tool": "qwenkit.tools",
    "ToolCall": "qwenkit.types",
    "ToolCallEvent": "qwenkit.agents",
    "ToolContext": "qwenkit.tools",
    "ToolMessage": "qwenkit.types",
    "ToolOutput": "qwenkit.tools",
    "ToolRegistry": "qwenkit.tools",
    "ToolResult": "qwenkit.tools",
    "ToolResultEvent": "qwenkit.agents",
    "ToolSpec": "qwenkit.types",
    "TranscriptError": "qwenkit.errors",
    "TranscriptLocked": "qwenkit.errors",
    "Usage": "qwenkit.types",
    "UsageLimits": "qwenkit.agents",
    "UserMessage": "qwenkit.types",
    "get_format": "qwenkit.llm.formats",
    "load_transcript": "qwenkit.agents",
    "tool": "qwenkit.tools",
}

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
    "NestedEvent",
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'qwenkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
