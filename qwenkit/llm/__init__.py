"""Model backends, typed messages and the prompt formats."""

from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatModel, ChatRequest, Sampling, StreamChunk
from qwenkit.llm.openai_compat import OpenAICompatible
from qwenkit.types import (
    AssistantMessage,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)

__all__ = [
    "AssistantMessage", "ChatModel", "ChatRequest", "Completion", "Message", "ModelError", "OpenAICompatible",
    "Sampling", "StreamChunk", "SystemMessage", "ToolCall", "ToolMessage", "Usage", "UserMessage",
]
