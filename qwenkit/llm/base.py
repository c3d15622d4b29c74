"""The `ChatModel` protocol every backend implements, and the request it takes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.types import Completion, Message


class Sampling(BaseModel):
    """Sampling settings. Temperature 0 and a fixed seed make runs reproducible.

    Attributes:
        temperature: Softmax temperature; 0 means greedy.
        top_p: Nucleus sampling mass.
        seed: Seed for the server's sampler (``None`` leaves it to the server).
        max_tokens: Cap on generated tokens per reply.
        extra_body: Extra JSON fields sent as they are (vLLM's ``top_k``, ``repetition_penalty``, ...).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = 0
    max_tokens: int | None = 1024
    extra_body: dict[str, Any] = Field(default_factory=dict)


class ChatRequest(BaseModel):
    """Everything a backend needs for one reply.

    Attributes:
        messages: The conversation as the prompt format rendered it.
        stop: Stop words; generation ends before any of them.
        tools: OpenAI-style tool definitions, only for the native format.
        tool_choice: ``auto``, ``required``, ``none`` or a tool name (native format only).
        thinking: Qwen3's thinking switch: ``True``/``False`` are sent to the chat template as
            ``enable_thinking`` (servers: ``chat_template_kwargs``; the embedded backend renders it); ``None``
            leaves the template's default.
        response_format: Structured output for the reply (OpenAI/vLLM ``response_format``), or ``None``.
        continue_final: The last message is a partial assistant turn the model must continue
            (Qwen's ReAct and ✿FUNCTION✿ formats fold observations into the assistant turn).
        sampling: Sampling settings.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: list[Message]
    stop: list[str] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "required", "none"] | str | None = None
    continue_final: bool = False
    sampling: Sampling = Sampling()
    thinking: bool | None = None
    response_format: dict[str, Any] | None = None


class StreamChunk(BaseModel):
    """One piece of a streamed reply. The last chunk carries the whole `Completion`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    delta: str = ""
    reasoning: str = ""
    completion: Completion | None = None


@runtime_checkable
class ChatModel(Protocol):
    """A chat model backend: remote (OpenAI-compatible), embedded (llama.cpp) or scripted (tests).

    Errors a caller must see (server down, unusable reply) are `qwenkit.errors.ModelError`; what the
    model wrote is returned as it is, for the prompt format to parse.
    """

    @property
    def name(self) -> str:
        """The model name used in requests and reports."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """Return the whole reply to ``request``."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas as they arrive; the final chunk has ``completion`` set."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (HTTP connections, a loaded model, threads).

        Idempotent: a second call does nothing. The model must not be used afterwards. Backends
        that hold nothing implement it as a no-op; `Agent.aclose` closes its model through it.
        """
        ...
