"""What a backend can show about its model's chat template, for choosing the prompt format and the budget.

A backend that can see its template (the embedded GGUF, a template file the user named, a vLLM server that
renders conversations on request) implements `DescribesTemplate`; one that can count prompt tokens with the
model's tokenizer implements `CountsTokens`. Both are optional: `Agent(format="auto")` falls back to ``nous``
and to an estimate where nothing is visible.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

PROBE_TOOL: dict[str, Any] = {"type": "function", "function": {
    "name": "qwenkit_probe_tool", "description": "A probe tool.",
    "parameters": {"type": "object", "properties": {"probe_arg": {"type": "string"}}, "required": ["probe_arg"]},
}}
"""The tool in the probe conversation; its name and argument are unlikely to occur in any template."""

PROBE_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "qwenkit probe question"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_probe", "type": "function", "function": {
        "name": "qwenkit_probe_tool", "arguments": {"probe_arg": "qwenkit_probe_value"}}}]},
    {"role": "tool", "tool_call_id": "call_probe", "name": "qwenkit_probe_tool", "content": "qwenkit probe result"},
]
"""A conversation with one tool call and its result: how a template writes them tells its tool format."""


class TemplateInfo(BaseModel):
    """What is known of a model's chat template.

    Attributes:
        source: Where it was seen, for the user ("the GGUF's chat template", "vLLM's /tokenize", a path).
        template: The Jinja2 template text, when the backend has it.
        probe_render: `PROBE_MESSAGES` with `PROBE_TOOL` rendered by the template (a server renders it for
            us when the template text itself is not visible).
        max_input_tokens: The model's context length, when known (GGUF metadata, vLLM's ``max_model_len``).
        thinking: Whether the template knows Qwen3's ``enable_thinking`` switch, when known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    template: str | None = None
    probe_render: str | None = None
    max_input_tokens: int | None = None
    thinking: bool | None = None


@runtime_checkable
class DescribesTemplate(Protocol):
    """A backend that can tell what its chat template does."""

    async def template_info(self) -> TemplateInfo | None:
        """What is visible of the template (cached by the backend), or ``None`` when nothing is."""
        ...


@runtime_checkable
class CountsTokens(Protocol):
    """A backend that counts prompt tokens with the model's own tokenizer and template."""

    async def count_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int | None:
        """Tokens the rendered prompt would take (OpenAI-style message dicts), or ``None`` if unknown."""
        ...
