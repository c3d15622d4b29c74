"""OpenTelemetry spans for runs, model calls and tool calls, after the GenAI semantic conventions.

qwenkit only uses ``opentelemetry-api``: with no tracer provider configured every span is the API's no-op,
so tracing costs next to nothing until an application (or ``qwenkit run --trace``) installs the SDK. Span
names and attributes follow the OpenTelemetry GenAI conventions: ``invoke_agent {name}``, ``chat {model}``
and ``execute_tool {tool}``, with ``gen_ai.*`` attributes. Prompt and completion text are recorded only when
``QWENKIT_TRACE_CONTENT=1``, as the conventions advise (they may hold personal data).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from qwenkit.types import Completion, Message, ToolCall

TRACER_NAME = "qwenkit"
CONTENT_ENV = "QWENKIT_TRACE_CONTENT"
MAX_CONTENT_CHARS = 16_000
"""Recorded prompt/completion text is cut to this many characters per attribute."""


def _tracer() -> trace.Tracer:
    # Looked up per use, not at import: the application may install its provider after importing qwenkit.
    return trace.get_tracer(TRACER_NAME)


def content_enabled() -> bool:
    """Whether prompt and completion text may be recorded (``QWENKIT_TRACE_CONTENT=1``)."""
    return os.environ.get(CONTENT_ENV, "") in ("1", "true", "yes")


def _text(value: str) -> str:
    return value if len(value) <= MAX_CONTENT_CHARS else value[:MAX_CONTENT_CHARS] + "…"


@contextmanager
def agent_span(agent_name: str, model: str, conversation_id: str) -> Iterator[Span]:
    """The span of one run (``invoke_agent``)."""
    with _tracer().start_as_current_span(f"invoke_agent {agent_name}", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_name,
        "gen_ai.request.model": model, "gen_ai.conversation.id": conversation_id,
    }) as span:
        yield span


@contextmanager
def chat_span(model: str, step: int, temperature: float, max_tokens: int | None,
              messages: list[Message]) -> Iterator[Span]:
    """The span of one model call (``chat``); `record_completion` adds what came back."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.request.temperature": temperature,
        "qwenkit.step": step,
    }
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    if content_enabled():
        attributes["gen_ai.input.messages"] = _text(json.dumps(
            [m.model_dump(mode="json") for m in messages], ensure_ascii=False))
    with _tracer().start_as_current_span(f"chat {model}", attributes=attributes) as span:
        yield span


def record_completion(span: Span, completion: Completion) -> None:
    """Put a completion's usage, finish reason and (with opt-in) text on its chat span."""
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.usage.input_tokens", completion.usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", completion.usage.completion_tokens)
    if completion.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [completion.finish_reason])
    if content_enabled():
        span.set_attribute("gen_ai.output.messages", _text(completion.text))


@contextmanager
def tool_span(call: ToolCall) -> Iterator[Span]:
    """The span of one tool call (``execute_tool``); parallel calls are siblings under the run's span."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name, "gen_ai.tool.call.id": call.id,
        "gen_ai.tool.type": "function",
    }
    if content_enabled():
        attributes["gen_ai.tool.call.arguments"] = _text(json.dumps(call.arguments, ensure_ascii=False, default=str))
    with _tracer().start_as_current_span(f"execute_tool {call.name}", attributes=attributes) as span:
        yield span


def record_tool_result(span: Span, ok: bool, error_type: str | None, content: str) -> None:
    """Mark a tool span failed (with the error type) or record its result text (with opt-in)."""
    if not span.is_recording():
        return
    if not ok:
        span.set_attribute("error.type", error_type or "ToolError")
        span.set_status(Status(StatusCode.ERROR, error_type or "tool error"))
    if content_enabled():
        span.set_attribute("gen_ai.tool.call.result", _text(content))


def record_error(span: Span, error_type: str, message: str) -> None:
    """Mark a span failed."""
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, message[:500]))


@contextmanager
def sandbox_span(kernel_id: str) -> Iterator[Span]:
    """A child span for one execution in the sandbox; the caller sets ``qwenkit.sandbox.timed_out``."""
    attributes = {"qwenkit.sandbox.kernel_id": kernel_id}
    with _tracer().start_as_current_span("sandbox.execute", attributes=attributes) as span:
        yield span
