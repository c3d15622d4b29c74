"""Typed messages and requests written as OpenAI chat-completion JSON."""

from __future__ import annotations

import json
from typing import Any

from qwenkit._untrusted import MAX_JSON_DEPTH
from qwenkit.llm.base import ChatRequest
from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, UserMessage


def to_wire(message: Message) -> dict[str, Any]:
    """Write a typed message as an OpenAI chat message.

    Assistant content is always a string, never ``null``: llama.cpp's server rejects ``null``.
    """
    match message:
        case SystemMessage() | UserMessage():
            return {"role": message.role, "content": message.content}
        case AssistantMessage():
            wire: dict[str, Any] = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                wire["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json_arguments(c)},
                    }
                    for c in message.tool_calls
                ]
            return wire
        case ToolMessage():
            return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}


def json_arguments(call: ToolCall) -> str:
    """The model's own argument text if it is strict JSON, else the repaired arguments as JSON.

    vLLM runs ``json.loads`` on past calls' arguments and answers 500 when it fails. Text nested deeper
    than `MAX_JSON_DEPTH` is not parsed again (the parser would recurse); its call has ``{}`` as arguments.
    """
    if call.raw_arguments and text_depth(call.raw_arguments) <= MAX_JSON_DEPTH:
        try:
            json.loads(call.raw_arguments)
            return call.raw_arguments
        except (ValueError, RecursionError):
            pass
    return json.dumps(call.arguments, ensure_ascii=False)


def text_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Bracket nesting of JSON-like text outside quoted strings, in one pass; stops past ``limit``.

    An estimate for text that may not be JSON at all (json5, a half-written object): it only has to
    tell "shallow enough to hand to a recursive parser" from "too deep".
    """
    depth = deepest = 0
    quote = ""
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}" and depth:
            depth -= 1
    return deepest


def tool_choice(choice: str | None) -> Any:
    """The ``tool_choice`` field: a mode as it is, a tool name as a named function."""
    if choice is None or choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def request_params(model: str, request: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for ``request`` (``extra_body`` included)."""
    s = request.sampling
    extra = dict(s.extra_body)
    if request.thinking is not None:
        # Merged into what the user put in extra_body: their other template switches are kept.
        kwargs = extra.get("chat_template_kwargs")
        extra["chat_template_kwargs"] = {**(kwargs if isinstance(kwargs, dict) else {}),
                                         "enable_thinking": request.thinking}
    if request.continue_final:
        # vLLM continues the trailing assistant message instead of opening a new turn.
        extra.update(continue_final_message=True, add_generation_prompt=False)
    params: dict[str, Any] = {
        "model": model,
        "messages": [to_wire(m) for m in request.messages],
        "temperature": s.temperature,
    }
    optional = {"top_p": s.top_p, "seed": s.seed, "max_tokens": s.max_tokens, "stop": request.stop or None,
                "tools": request.tools, "tool_choice": tool_choice(request.tool_choice),
                "response_format": request.response_format}
    params.update({k: v for k, v in optional.items() if v is not None})
    if extra:
        params["extra_body"] = extra
    return params
