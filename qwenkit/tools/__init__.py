"""Tools: the base contract, schemas from type hints, the `@tool` decorator and the registry."""

from qwenkit.tools.base import ModelRetry, Tool, ToolContext, ToolOutput, ToolResult
from qwenkit.tools.function import FunctionTool, tool
from qwenkit.tools.registry import ToolRegistry
from qwenkit.types import ToolSpec

__all__ = [
    "FunctionTool", "ModelRetry", "Tool", "ToolContext", "ToolOutput", "ToolRegistry", "ToolResult", "ToolSpec",
    "tool",
]
