"""Chat templates: typed messages rendered with a model's Jinja2 chat template, as transformers and vLLM do.

Used by the embedded backend (the GGUF's template), by ``format="auto"`` (to see how a template writes tool
calls) and by the golden tests that compare qwenkit's prompt formats with the real Qwen templates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenkit.errors import ConfigError, ModelError
from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage

if TYPE_CHECKING:
    from qwenkit.llm._template_limits import BoundedEnvironment

MAX_TEMPLATE_BYTES = 1 << 20
"""The largest template file read (real chat templates are a few KiB; a file is untrusted input)."""

RENDER_TIME_LIMIT = 5.0
"""Seconds one render of a template may take (real chat templates take milliseconds)."""

THINKING_SWITCH = "enable_thinking"
"""The template variable Qwen3's templates read to turn thinking on or off."""


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

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = _environment()
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
        prompt = env.render_bounded(
            template, messages=msgs, tools=list(tools) if tools else None, add_generation_prompt=add_generation_prompt,
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


def _environment() -> BoundedEnvironment:
    """The Jinja2 environment chat templates run in, set up as transformers and vLLM set theirs up."""
    from jinja2.ext import loopcontrols

    from qwenkit.llm._template_limits import MAX_INDENT, BoundedEnvironment, TemplateLimit

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | str | None = None,
               separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
        width = len(indent) if isinstance(indent, str) else indent or 0
        if width > MAX_INDENT:  # written on every line, once per level
            raise TemplateLimit(f"tojson with an indent wider than {MAX_INDENT}")
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    # A template is untrusted input (a GGUF's, a file's): the sandboxed environment keeps it from Python,
    # and its bounds keep it from holding the process or its memory.
    env = BoundedEnvironment(time_limit=RENDER_TIME_LIMIT, trim_blocks=True, lstrip_blocks=True,
                             extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    return env


def check_template(template: str, source: str) -> str:
    """Parse ``template`` once so that a broken one is reported where it came from, not mid-run.

    Args:
        template: Jinja2 source.
        source: Where it came from, for the message ("the chat template file x.jinja").

    Returns:
        ``template`` unchanged.

    Raises:
        ConfigError: The template is empty or does not parse; the message names ``source``.
    """
    from jinja2 import TemplateSyntaxError

    if not template.strip():
        raise ConfigError(f"{source} is empty")
    try:
        _environment().parse(template)
    except TemplateSyntaxError as err:
        raise ConfigError(f"{source} does not parse: {err.message} (line {err.lineno})") from err
    except RecursionError:  # Jinja2's parser recurses once per level of nesting
        raise ConfigError(f"{source} does not parse: it is nested too deeply") from None
    return template


def load_template_file(path: str | os.PathLike[str]) -> str:
    """Read a chat template the user named: a Jinja2 file, a ``tokenizer_config.json``, or a model folder.

    A folder is read as Hugging Face lays one out: its ``chat_template.jinja`` if present, else the
    ``chat_template`` of its ``tokenizer_config.json``. In a ``tokenizer_config.json`` whose
    ``chat_template`` is a list of named templates, the one named ``default`` is used.

    Raises:
        ConfigError: The file is missing, unreadable, too large, not UTF-8, holds no chat template, or the
            template does not parse; the message names the file.
    """
    where = Path(path).expanduser()
    if where.is_dir():
        jinja = where / "chat_template.jinja"
        where = jinja if jinja.is_file() else where / "tokenizer_config.json"
    source = f"the chat template file {where}"
    try:
        with where.open("rb") as f:
            data = f.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{source} cannot be read: {err.strerror or err}") from err
    if len(data) > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_TEMPLATE_BYTES // 1024} KiB; it is not a chat template")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source} is not UTF-8 text") from err
    if where.suffix == ".json":
        text = _template_from_config(text, source)
    return check_template(text, source)


def _template_from_config(text: str, source: str) -> str:
    """The ``chat_template`` of a ``tokenizer_config.json`` (a string, or a list of named templates)."""
    try:
        config = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{source} is not valid JSON: {err}") from err
    found = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(found, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        named = {t.get("name"): t.get("template") for t in found if isinstance(t, dict)}
        found = named.get("default")
    if not isinstance(found, str):
        raise ConfigError(f"{source} has no chat_template")
    return found


def template_has_thinking(template: str) -> bool:
    """Whether the template reads Qwen3's ``enable_thinking`` switch."""
    return THINKING_SWITCH in template
