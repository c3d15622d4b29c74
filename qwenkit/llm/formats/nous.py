"""The Nous/Hermes format of Qwen2.5 and Qwen3: ``<tools>``, ``<tool_call>``, ``<tool_response>``.

Upstream templates followed:

- ``QwenLM/Qwen-Agent`` ``qwen_agent/llm/fncall_prompts/nous_fncall_prompt.py`` (``NousFnCallPrompt``):
  ``FN_CALL_TEMPLATE`` word for word, appended to the system message after a blank line (or sent as
  the system message), one ``{"type": "function", "function": ...}`` JSON line per tool; each call
  written as ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`` after the turn's text,
  separated by newlines; each result as ``<tool_response>\\n...\\n</tool_response>`` in a user turn,
  consecutive results in one user turn separated by ``\\n``; no stop words; parsing with ``json5``,
  falling back to picking ``"name"`` and ``"arguments"`` out of broken JSON; text before the first
  call kept; the ``<code>...</code>`` variant for code arguments accepted.
- The tool section of Qwen2.5's / Qwen3's chat template (``# Tools`` ... ``</tool_call>``), which
  writes the same text: ``tool | tojson`` is ``json.dumps`` with ``ensure_ascii=False``, tool
  responses are merged into one user turn exactly as above. Unlike the HF template, no default
  "You are Qwen, created by Alibaba Cloud." system text is added (Qwen-Agent adds none either).

Reasoning is kept in `AssistantMessage.reasoning` (Qwen-Agent keeps ``reasoning_content`` beside the
text); the backend decides whether the server gets it. Replies with ``<think>...</think>`` have it
split off into ``reasoning``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from qwenkit.llm.formats._json import load_json, mark_truncated, parse_arguments, split_think
from qwenkit.llm.formats.base import ParsedReply, RenderedPrompt
from qwenkit.types import (
    AssistantMessage,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

FN_CALL_TEMPLATE = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tool_descs}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:')


def tool_system(tools: Sequence[ToolSpec]) -> str:
    """Return the ``# Tools`` system text for ``tools``."""
    descs = "\n".join(json.dumps(t.openai_schema(), ensure_ascii=False) for t in tools)
    return FN_CALL_TEMPLATE.format(tool_descs=descs)


def call_block(call: ToolCall) -> str:
    """Return ``<tool_call>`` text for ``call`` (arguments as an object, or the raw text if unreadable)."""
    arguments: Any = call.arguments
    if call.arguments_error is not None and call.raw_arguments:
        arguments = call.raw_arguments
    body = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def parse_tool_call_text(text: str) -> ParsedReply:
    """Read ``<tool_call>`` blocks (and ``<think>``) from reply text. Never raises.

    Text before the first call (and any text between or after calls) is content; ``<tool_response>``
    written by the model and everything after it is ignored; an unclosed last block is still read.
    """
    try:
        return _parse(text if isinstance(text, str) else "")
    except Exception as exc:  # last resort; _parse is written not to raise
        return ParsedReply(content=str(text), problems=[f"could not parse the reply ({exc!r})"])


class NousFormat:
    """Hermes-style tool calling, the format Qwen2.5/Qwen3 chat templates use for ``tools``.

    Rendering writes it in plain messages, so it works on servers without a tool parser.
    """

    name: str = "nous"

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> RenderedPrompt:
        """Write the conversation with ``<tools>`` in the system message and results as user turns.

        Args:
            messages: System?, user, assistant, tool, ... messages.
            tools: The tools the model may call; none means no system text is added.

        Returns:
            The messages to send (no stop words, never ``continue_final``).
        """
        out: list[Message] = []
        responses = False  # the last message in `out` holds tool responses
        for m in messages:
            if isinstance(m, AssistantMessage):
                text = m.content
                for call in m.tool_calls:
                    text += ("\n" if text and not text.endswith("\n") else "") + call_block(call)
                last = out[-1] if out else None
                if isinstance(last, AssistantMessage):  # two assistant messages in a row: one turn
                    sep = "\n" if last.content and not last.content.endswith("\n") else ""
                    out[-1] = AssistantMessage(
                        content=last.content + sep + text, reasoning=last.reasoning or m.reasoning
                    )
                else:
                    out.append(AssistantMessage(content=text, reasoning=m.reasoning))
                responses = False
            elif isinstance(m, ToolMessage):
                block = f"{RESPONSE_OPEN}\n{m.content}\n{RESPONSE_CLOSE}"
                last = out[-1] if out else None
                if responses and isinstance(last, UserMessage):
                    out[-1] = UserMessage(content=last.content + "\n" + block)
                else:
                    out.append(UserMessage(content=block))
                responses = True
            else:
                out.append(m)
                responses = False
        if tools:
            system = tool_system(list(tools))
            if out and isinstance(out[0], SystemMessage):
                out[0] = SystemMessage(content=out[0].content + "\n\n" + system)
            else:
                out.insert(0, SystemMessage(content=system))
        return RenderedPrompt(messages=out)

    def parse(self, text: str) -> ParsedReply:
        """Read ``<tool_call>`` blocks from a reply. Never raises (see `parse_tool_call_text`)."""
        return parse_tool_call_text(text)

    def parse_completion(self, completion: Completion) -> ParsedReply:
        """Read a reply; an unclosed call cut off by the token limit gets an argument error."""
        reply = self.parse(completion.text)
        closed = completion.text.rstrip().endswith(CALL_CLOSE)
        return mark_truncated(reply, completion.finish_reason, last_call_complete=closed)


# ----------------------------------------------------------------------------------------- parsing


def _parse(text: str) -> ParsedReply:
    problems: list[str] = []
    reasoning, text, more = split_think(text)
    problems += more
    cut = text.find(RESPONSE_OPEN)
    if cut >= 0:
        if text[cut:].strip():
            problems.append("ignored a <tool_response> written by the model (results come from tools)")
        text = text[:cut]

    if CALL_OPEN not in text and (fenced := _fenced_calls(text, problems)) is not None:
        return fenced.model_copy(update={"reasoning": reasoning})
    parts = text.split(CALL_OPEN)
    content = [parts[0]]
    calls: list[ToolCall] = []
    for part in parts[1:]:
        body, closed, tail = part.partition(CALL_CLOSE)
        if not closed and body.strip():
            problems.append("a <tool_call> was not closed; read it to the end of the reply")
        if body.strip():
            calls.append(_read_call(body, problems))
        elif closed:
            problems.append("ignored an empty <tool_call>")
        content.append(tail)
    return ParsedReply(
        content="\n".join(c.strip() for c in content if c.strip()),
        reasoning=reasoning,
        tool_calls=calls,
        problems=problems,
    )


_FENCE = re.compile(r"```[ \t]*(?:json5?|tool_call|javascript)?[ \t]*\n(.*?)```", re.DOTALL)


def _fenced_calls(text: str, problems: list[str]) -> ParsedReply | None:
    """Read calls a small model wrote as fenced (or bare) JSON ``{"name", "arguments"}`` without tags.

    Returns ``None`` when the reply holds no such object, so it stays a plain answer.
    """
    blocks = [(m.start(), m.end(), m.group(1)) for m in _FENCE.finditer(text)]
    if not blocks and text.strip().startswith("{"):
        blocks = [(0, len(text), text)]
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    for start, end, body in blocks:
        value, _ = load_json(body)
        if isinstance(value, dict) and "name" in value and ("arguments" in value or "parameters" in value):
            calls.append(_read_call(body, problems))
            spans.append((start, end))
    if not calls:
        return None
    problems.append("read a call written as a JSON block without <tool_call> tags")
    content, pos = [], 0
    for start, end in spans:
        content.append(text[pos:start])
        pos = end
    content.append(text[pos:])
    return ParsedReply(content="\n".join(c.strip() for c in content if c.strip()), tool_calls=calls,
                       problems=problems)


def _read_call(body: str, problems: list[str]) -> ToolCall:
    code: str | None = None
    if "<code>" in body:  # Qwen-Agent's code mode: {"name": ..., "arguments": {"code": ""}}<code>...</code>
        body, _, rest = body.partition("<code>")
        code = rest.split("</code>")[0].strip("\n")
    value, error = load_json(body)
    if isinstance(value, dict) and value.get("name") is not None:
        name = str(value["name"]).strip()
        raw: Any = value.get("arguments", value.get("parameters", {}))
        if raw is None:
            raw = {}
        if isinstance(raw, str):  # arguments encoded twice, as the OpenAI API sends them
            arguments, arg_error = parse_arguments(raw)
            raw_text = raw
        elif isinstance(raw, dict):
            arguments, arg_error = {str(k): v for k, v in raw.items()}, None
            raw_text = json.dumps(raw, ensure_ascii=False)
        else:
            arguments, arg_error = {}, f"expected a JSON object, got {type(raw).__name__}"
            raw_text = json.dumps(raw, ensure_ascii=False)
    else:
        found = _NAME.search(body)
        if found is None:
            reason = error or 'no "name" in the tool call'
            problems.append(f"could not read a tool call: {reason}")
            return ToolCall(name="", raw_arguments=body.strip(), arguments_error=f"could not read the call: {reason}")
        name = _unescape(found.group(1)).strip()
        problems.append(f"read the call to {name!r} from broken JSON")
        args_at = _ARGUMENTS.search(body)
        raw_text = body[args_at.end() :].strip() if args_at else ""
        if raw_text.endswith("}"):  # the brace that closed the whole call
            raw_text = raw_text[:-1].rstrip()
        arguments, arg_error = parse_arguments(raw_text)
    if code is not None and arg_error is None:
        arguments = {**arguments, "code": code}
    return ToolCall(name=name, arguments=arguments, raw_arguments=raw_text, arguments_error=arg_error)


def _unescape(s: str) -> str:
    try:
        value = json.loads(f'"{s}"')
    except ValueError:
        return s
    return value if isinstance(value, str) else s
