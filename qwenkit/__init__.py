"""qwenkit: an agent and tool-use framework for Qwen chat models."""

from qwenkit.agents import Agent, RunResult
from qwenkit.llm import OpenAICompatible, Sampling
from qwenkit.tools import ModelRetry, Tool, ToolRegistry, tool

__all__ = ["Agent", "ModelRetry", "OpenAICompatible", "RunResult", "Sampling", "Tool", "ToolRegistry", "tool"]
__version__ = "0.1.0"
