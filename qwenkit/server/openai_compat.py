"""``/v1/chat/completions``: the agent behind the OpenAI chat API, so any OpenAI client can use it.

Each request is one agent run over the messages given (the last must be the user's); tools run on the
server, and the reply is the agent's final answer. Streaming sends the answer when the run ends, as
OpenAI ``chat.completion.chunk`` events, then ``[DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwenkit.agents.agent import Agent
from qwenkit.agents.events import RunFinished, RunResult
from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage

FINISH_REASONS = {"completed": "stop", "max_steps": "length", "limit": "length"}


class TextPart(BaseModel):
    """A text part of a message's content."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of the request."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The content as one string."""
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The request body (fields the agent does not use, like ``temperature``, are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False

    @model_validator(mode="after")
    def _last_is_user(self) -> ChatCompletionRequest:
        if self.messages[-1].role != "user":
            raise ValueError("messages: the last message must have the role 'user'")
        return self


def to_history(messages: list[ChatMessage]) -> list[Message]:
    """The qwenkit messages before the last (the prompt)."""
    out: list[Message] = []
    for m in messages:
        text = m.text()
        if m.role in ("system", "developer"):
            out.append(SystemMessage(content=text))
        elif m.role == "user":
            out.append(UserMessage(content=text))
        elif m.role == "assistant":
            out.append(AssistantMessage(content=text))
        else:
            out.append(ToolMessage(tool_call_id=m.tool_call_id or "", name=m.name or "", content=text))
    return out


def _usage(result: RunResult) -> dict[str, int]:
    u = result.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens}


async def run_once(agent: Agent[Any], request: ChatCompletionRequest) -> RunResult:
    """Run the agent on the request's messages; returns the run's result."""
    history = to_history(request.messages[:-1])
    result: RunResult | None = None
    async for event in agent.stream(request.messages[-1].text(), history=history or None):
        if isinstance(event, RunFinished):
            result = event.result
    if result is None:  # the loop always ends with run_finished unless it raised
        raise RuntimeError("the agent run ended without a result")
    return result


def completion_body(result: RunResult, model: str) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer},
                     "finish_reason": FINISH_REASONS.get(result.status, "stop")}],
        "usage": _usage(result),
        "qwenkit": {"status": result.status, "error": result.error, "steps": result.steps,
                    "tool_calls": result.tool_calls},
    }


async def completion_chunks(agent: Agent[Any], request: ChatCompletionRequest, model: str) -> AsyncIterator[str]:
    """The streaming answer as SSE ``data:`` lines (a client that goes away stops the run)."""
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        result = await run_once(agent, request)
    except Exception as err:  # the status line is sent: report in the stream, as OpenAI servers do
        error = {"error": {"message": str(err) or type(err).__name__, "type": type(err).__name__}}
        yield f"data: {json.dumps(error)}\n\n"
        yield "data: [DONE]\n\n"
        return
    if result.answer:
        yield chunk({"content": result.answer})
    yield chunk({}, FINISH_REASONS.get(result.status, "stop"), usage=_usage(result))
    yield "data: [DONE]\n\n"
