"""Chat templates: typed messages rendered with a model's Jinja2 chat template, as transformers and vLLM do.

Used by the embedded backend (the GGUF's template), by ``format="auto"`` (to see how a template writes tool
calls) and by the golden tests that compare qwenkit's prompt formats with the real Qwen templates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from qwenkit.errors import ModelError
from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Write typed messages as chat-template input (tool-call arguments as objects, as in transformers)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        match m:
            case SystemMessage() | UserMessage():
                out.append({"role": m.role, "content": m.content})
            case AssistantMessage():
                d: dict[str, Any] = {"role": "assistant", "content": m.content}
                if m.tool_calls:
                    d["tool_calls"] = [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for c in m.tool_calls
                    ]
                out.append(d)
            case ToolMessage():
                out.append({"role": "tool", "tool_call_id": m.tool_call_id, "name": m.name, "content": m.content})
    return out


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    continue_final: bool = False,
    bos_token: str = "",
    eos_token: str = "",
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Render a Hugging Face chat template into the prompt text.

    Args:
        template: Jinja2 source (a GGUF's ``tokenizer.chat_template``).
        messages: Chat-template messages (see `template_messages`).
        tools: OpenAI tool definitions to show the template.
        continue_final: The last message is an assistant turn to continue: the prompt ends where its
            content ends (surrounding whitespace stripped, as transformers and so vLLM do), and no new
            turn is opened. An empty final message opens a fresh assistant turn instead.
        bos_token: Text of the BOS token, for templates that write it.
        eos_token: Text of the EOS token.
        template_kwargs: Extra variables for the template (Qwen3's ``enable_thinking``), as vLLM's
            ``chat_template_kwargs``.

    Returns:
        The prompt text.

    Raises:
        ModelError: The template fails, or ``continue_final`` is set and the last message is not an
            assistant message.
    """
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    # A GGUF's template is untrusted input: the sandboxed environment keeps it from reaching Python.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    msgs = list(messages)
    final = ""
    if continue_final:
        if not msgs or msgs[-1].get("role") != "assistant":
            raise ModelError("continue_final needs an assistant message last")
        final = str(msgs[-1].get("content") or "")
        if not final.strip():
            msgs = msgs[:-1]  # nothing to continue: open a fresh assistant turn instead
    add_generation_prompt = not continue_final or not final.strip()
    try:
        prompt = env.from_string(template).render(
            messages=msgs, tools=list(tools) if tools else None, add_generation_prompt=add_generation_prompt,
            bos_token=bos_token, eos_token=eos_token, raise_exception=raise_exception,
            strftime_now=lambda fmt: datetime.now().strftime(fmt), **dict(template_kwargs or {}),
        )
    except TemplateError as err:
        raise ModelError(f"the chat template failed: {err}") from err
    if continue_final and final.strip():
        # As transformers' continue_final_message: keep the prompt up to the end of the final content.
        end = prompt.rfind(final.strip())
        if end == -1:
            raise ModelError("the chat template did not write the final assistant message as given")
        prompt = prompt[: end + len(final.strip())]
    return prompt
