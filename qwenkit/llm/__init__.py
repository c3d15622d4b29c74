"""Model backends, typed messages and the prompt formats."""

from qwenkit.llm.base import ChatModel, ChatRequest, ModelError, Sampling, StreamChunk
from qwenkit.llm.messages import (
    AssistantMessage,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)
from qwenkit.llm.openai_compat import OpenAICompatible

__all__ = [
    "AssistantMessage", "ChatModel", "ChatRequest", "Completion", "Message", "ModelError", "OpenAICompatible",
    "Sampling", "StreamChunk", "SystemMessage", "ToolCall", "ToolMessage", "Usage", "UserMessage",
]
