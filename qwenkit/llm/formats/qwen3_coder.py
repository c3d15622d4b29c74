"""Qwen3-Coder's XML call format: ``<tool_call>``, ``<function=NAME>``, ``<parameter=KEY>``.

Upstream template followed: Qwen3-Coder-30B-A3B-Instruct's chat template (as vendored by vLLM,
``examples/tool_chat_template_qwen3coder.jinja``; kept in ``tests/data/templates/Qwen3-Coder.jinja``):

- tools go in the system message after a blank line, or after the template's default system text
  (`DEFAULT_SYSTEM`) when the conversation has none: ``# Tools``, then one ``<function>`` block per
  tool (``<name>``, ``<description>``, ``<parameters>`` with one ``<parameter>`` per property and
  every other key written as ``<key>value</key>``), then the instructions, word for word;
- a call is ``<tool_call>\\n<function=NAME>\\n<parameter=KEY>\\nVALUE\\n</parameter>\\n...</function>\\n
  </tool_call>``; a value is written raw (``str`` of it, so ``True`` for true), objects and lists as
  JSON; an assistant turn's text comes first, trimmed, followed by a blank line;
- tool results go back in one user turn, each ``<tool_response>\\nRESULT\\n</tool_response>\\n``.

Reading follows vLLM's ``qwen3_coder`` tool parser: one newline is stripped at each end of a value;
values are typed from the tool's JSON schema (``integer`` → int, ``number`` → float, ``boolean`` →
``true``/``false`` in any case, ``object``/``array`` → JSON, ``null`` → None, anything else the raw
string). The schemas are those of the tools of the last `Qwen3CoderFormat.render` (the reply answers
that prompt), or those given to the constructor. Parsing forgives missing closers, calls without
``<tool_call>``, and runs in one pass over the reply; text before the first call is content, text after
a call is dropped with a note (as vLLM's parser; the template tells the model so).

A value cannot hold ``</parameter>`` or ``</function>`` text: the format has no escape (as upstream).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qwenkit.llm.formats._json import RepairBudget, load_json
from qwenkit.llm.formats.base import (
    DEFAULT_MAX_CALLS,
    ParsedReply,
    RenderedPrompt,
    TextFormat,
    check_tool_choice,
    keep_recent_reasoning,
    prefill_reply,
    reply_body,
    too_many_calls,
    tool_turns_as_text,
)
from qwenkit.llm.formats.nous import CALL_CLOSE, CALL_OPEN, RESPONSE_CLOSE, RESPONSE_OPEN
from qwenkit.llm.formats.qwen import has_chinese
from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, ToolSpec, UserMessage

DEFAULT_SYSTEM = "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks."
"""The system text Qwen3-Coder's template writes before the tools when the conversation has none."""

INSTRUCTIONS = (
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n"
    "<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
    "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified "
    "format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in natural "
    "language BEFORE the function call, but NOT after\n- If there is no function call available, answer the question "
    "like normal with your current knowledge and do not tell the user about function calls\n</IMPORTANT>"
)

FUNCTION_OPEN, FUNCTION_CLOSE = "<function=", "</function>"
PARAM_OPEN, PARAM_CLOSE = "<parameter=", "</parameter>"

_EMPTY_CALL = "the <tool_call> block was empty (write <function=NAME> and its parameters inside it)"


# --------------------------------------------------------------------------------------- rendering


def _jinja_string(value: Any) -> str:
    """``value | string`` in Jinja2: Python's ``str``."""
    return value if isinstance(value, str) else str(value)


def _extra_keys(d: Any, handled: Sequence[str]) -> str:
    """The template's ``render_extra_keys`` macro."""
    if not isinstance(d, dict):
        return ""
    out = []
    for key, value in d.items():
        if key in handled:
            continue
        out.append(f"\n<{key}>{_value_text(value)}</{key}>")
    return "".join(out)


def tool_block(spec: ToolSpec) -> str:
    """One tool's ``<function>`` block, as Qwen3-Coder's template writes it."""
    fn = spec.openai_schema()["function"]
    description = _jinja_string(fn["description"]).strip()
    out = [f"\n<function>\n<name>{fn['name']}</name>", f"\n<description>{description}</description>", "\n<parameters>"]
    params = fn["parameters"]
    props = params.get("properties") if isinstance(params, dict) else None
    if isinstance(props, dict):
        for pname, fields in props.items():
            out.append(f"\n<parameter>\n<name>{pname}</name>")
            if isinstance(fields, dict):
                if "type" in fields:
                    out.append(f"\n<type>{_jinja_string(fields['type'])}</type>")
                if "description" in fields:
                    out.append(f"\n<description>{_jinja_string(fields['description']).strip()}</description>")
            out.append(_extra_keys(fields, ("name", "type", "description")))
            out.append("\n</parameter>")
    out.append(_extra_keys(params, ("type", "properties")))
    out.append("\n</parameters>")
    out.append(_extra_keys(fn, ("type", "name", "description", "parameters")))
    out.append("\n</function>")
    return "".join(out)


def tool_system(tools: Sequence[ToolSpec]) -> str:
    """The ``# Tools`` system text for ``tools`` (appended after a blank line)."""
    blocks = "".join(tool_block(t) for t in tools)
    return f"# Tools\n\nYou have access to the following functions:\n\n<tools>{blocks}\n</tools>{INSTRUCTIONS}"


def _value_text(value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    return _jinja_string(value)


def call_block(call: ToolCall) -> str:
    """``<tool_call>`` text for ``call``; a call whose arguments could not be read keeps its raw text."""
    if call.arguments_error is not None and call.raw_arguments:
        params = f"{PARAM_OPEN}arguments>\n{call.raw_arguments}\n{PARAM_CLOSE}\n"
    else:
        params = "".join(f"{PARAM_OPEN}{k}>\n{_value_text(v)}\n{PARAM_CLOSE}\n" for k, v in call.arguments.items())
    return f"{CALL_OPEN}\n{FUNCTION_OPEN}{call.name}>\n{params}{FUNCTION_CLOSE}\n{CALL_CLOSE}"


def assistant_text(content: str, calls: Sequence[ToolCall]) -> str:
    """An assistant turn's text, as the template writes the turn after ``<|im_start|>assistant\\n``."""
    if not calls:
        return content
    head = content.strip() + "\n\n" if content.strip() else ""
    return head + "\n".join(call_block(c) for c in calls)


class Qwen3CoderFormat(TextFormat):
    """Qwen3-Coder's ``<function=...>`` / ``<parameter=...>`` tool calling, written as plain messages.

    Args:
        tool_choice: ``auto`` (default), ``none`` (tools removed, past calls written as plain text),
            ``required`` (the reply is opened with ``<tool_call>\\n<function=``) or a tool name (the reply
            is opened with that call). A name not offered is a `ConfigError` at render time.
        tools: Tools whose schemas type the parameters read back before any `render`.
        max_calls: Most calls read from one reply; further calls are dropped and reported.
    """

    name: str = "qwen3_coder"
    call_markers = (FUNCTION_OPEN, CALL_OPEN)

    def __init__(
        self,
        *,
        tool_choice: str | None = None,
        tools: Sequence[ToolSpec] = (),
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        super().__init__(max_calls=max_calls)
        self.tool_choice = tool_choice
        self._schemas: dict[str, dict[str, Any]] = {}
        self.use_tools(tools)

    def use_tools(self, tools: Sequence[ToolSpec]) -> None:
        """Type the parameters of later replies by these tools' schemas (`render` calls it; none: no change)."""
        if tools:
            self._schemas = {t.name: t.parameters for t in tools}

    def render(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], *, tool_choice: str | None = None
    ) -> RenderedPrompt:
        """Write the conversation as Qwen3-Coder's template would, with the calls in the assistant text.

        Args:
            messages: System?, user, assistant, tool, ... messages.
            tools: The tools the model may call. With none, past calls are written as plain text.
            tool_choice: Overrides the format's ``tool_choice`` for this prompt.

        Returns:
            The messages (no stop words); ``continue_final`` and ``prefill`` when a call is forced.
        """
        choice = check_tool_choice(tool_choice or self.tool_choice, tools, self.name)
        self.use_tools(tools)
        msgs = keep_recent_reasoning(messages)
        if not tools or choice == "none":
            chinese = any(isinstance(m, SystemMessage | UserMessage) and has_chinese(m.content) for m in messages)
            return RenderedPrompt(messages=tool_turns_as_text(msgs, "zh" if chinese else "en"))
        out: list[Message] = []
        responses = False
        for m in msgs:
            if isinstance(m, AssistantMessage):
                out.append(AssistantMessage(content=assistant_text(m.content, m.tool_calls)))
                responses = False
            elif isinstance(m, ToolMessage):
                block = f"{RESPONSE_OPEN}\n{m.content}\n{RESPONSE_CLOSE}\n"
                last = out[-1] if out else None
                if responses and isinstance(last, UserMessage):
                    out[-1] = UserMessage(content=last.content + block)
                else:
                    out.append(UserMessage(content=block))
                responses = True
            else:
                out.append(m)
                responses = False
        system = tool_system(tools)
        if out and isinstance(out[0], SystemMessage):
            out[0] = SystemMessage(content=out[0].content + "\n\n" + system)
        else:
            out.insert(0, SystemMessage(content=DEFAULT_SYSTEM + "\n\n" + system))
        if choice is None:
            return RenderedPrompt(messages=out)
        prefill = f"{CALL_OPEN}\n{FUNCTION_OPEN}" + ("" if choice == "required" else f"{choice}>\n")
        if out and isinstance(out[-1], AssistantMessage) and out[-1].content:
            prefill = "\n" + prefill
        return RenderedPrompt(messages=prefill_reply(out, prefill), continue_final=True, prefill=prefill)

    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        """Return ``<tool_call>`` blocks for ``calls``, as the template writes them, one per line.

        Values read back typed by the tools' schemas; a string value holding ``</parameter>`` cannot be
        written (the format has no escape).
        """
        return "\n".join(call_block(c) for c in calls)

    def _parse(self, text: str) -> ParsedReply:
        return _parse(text, self.max_calls, self._schemas)

    def _last_call_complete(self, text: str) -> bool:
        return text.rstrip().endswith((CALL_CLOSE, FUNCTION_CLOSE))


# ----------------------------------------------------------------------------------------- parsing


def _parse(text: str, max_calls: int, schemas: dict[str, dict[str, Any]]) -> ParsedReply:
    reasoning, text, problems = reply_body(text, RESPONSE_OPEN)

    # Each call is the text from one "<function=" to its "</function>" (or "</tool_call>", or the next
    # "<function=", or the end). Every find below is bounded by the next call's start: one pass.
    starts: list[int] = []
    at = text.find(FUNCTION_OPEN)
    while at >= 0:
        starts.append(at)
        at = text.find(FUNCTION_OPEN, at + len(FUNCTION_OPEN))
    content: list[str] = []
    calls: list[ToolCall] = []
    budget = RepairBudget()
    pos = 0
    for k, start in enumerate(starts):
        limit = starts[k + 1] if k + 1 < len(starts) else len(text)
        calls += _empty_calls(text[pos:start], problems, max_calls - len(calls))
        content.append(text[pos:start])
        end, after = _call_end(text, start, limit)
        if len(calls) < max_calls:  # calls past the limit are counted, never read
            calls.append(_read_call(text[start + len(FUNCTION_OPEN) : end], schemas, problems, budget))
            if end == limit and not text[start:limit].rstrip().endswith(CALL_CLOSE):
                problems.append("a <function=...> call was not closed; read it to the next call or the end")
        pos = after
    tail = text[pos:]
    calls += _empty_calls(tail, problems, max_calls - len(calls))
    content.append(tail)
    if len(starts) > max_calls:
        problems.append(too_many_calls(len(starts), max_calls))
    pieces = [c.replace(CALL_OPEN, "").replace(CALL_CLOSE, "").strip() for c in content]
    if any(pieces[1:]):  # as vLLM's parser and the template's "reasoning BEFORE the function call, NOT after"
        problems.append("ignored text written after a tool call (write it before the calls)")
    return ParsedReply(content=pieces[0], reasoning=reasoning, tool_calls=calls[:max_calls], problems=problems)


def _call_end(text: str, start: int, limit: int) -> tuple[int, int]:
    """Where a call's body ends and where the text after it starts (past ``</function>``/``</tool_call>``)."""
    close = text.find(FUNCTION_CLOSE, start, limit)
    wrap = text.find(CALL_CLOSE, start, limit)
    if close >= 0 and (wrap < 0 or close < wrap):
        after = close + len(FUNCTION_CLOSE)
        rest = text[after:limit].lstrip()
        if rest.startswith(CALL_CLOSE):
            after = limit - len(rest) + len(CALL_CLOSE)
        return close, after
    if wrap >= 0:
        return wrap, wrap + len(CALL_CLOSE)
    return limit, limit


def _empty_calls(outside: str, problems: list[str], room: int) -> list[ToolCall]:
    """``<tool_call></tool_call>`` with nothing inside, in text outside the calls: an error call each (at
    most ``room``), so the model hears about it (as Qwen-Agent does) instead of the reply silently doing
    nothing. Each search stops at the next ``<tool_call>``: one pass."""
    found: list[ToolCall] = []
    at = outside.find(CALL_OPEN)
    while at >= 0:
        body_at = at + len(CALL_OPEN)
        nxt = outside.find(CALL_OPEN, body_at)
        limit = nxt if nxt >= 0 else len(outside)
        close = outside.find(CALL_CLOSE, body_at, limit)
        if close >= 0 and not outside[body_at:close].strip():
            if len(found) < room:
                found.append(ToolCall(name="", raw_arguments="", arguments_error=_EMPTY_CALL))
            problems.append("an empty <tool_call> was answered with an error")
        at = nxt
    return found


def _read_call(body: str, schemas: dict[str, dict[str, Any]], problems: list[str], budget: RepairBudget) -> ToolCall:
    """Read ``NAME>\\n<parameter=...>...`` (the text after ``<function=``)."""
    gt = body.find(">")
    nl = body.find("\n")
    if gt < 0 or (0 <= nl < gt):
        cut = nl if nl >= 0 else len(body)
        name, rest = body[:cut].strip(), body[cut:]
        problems.append(f"<function={name[:80]} was not closed with '>'")
    else:
        name, rest = body[:gt].strip(), body[gt + 1 :]
    props = schemas.get(name, {}).get("properties")
    types = props if isinstance(props, dict) else {}
    arguments: dict[str, Any] = {}
    raw: dict[str, str] = {}
    at = rest.find(PARAM_OPEN)
    if at < 0 and rest.strip():
        problems.append(f"ignored text in the call to {name[:80]!r} outside <parameter=...>")
    while at >= 0:
        key_at = at + len(PARAM_OPEN)
        nxt = rest.find(PARAM_OPEN, key_at)
        limit = nxt if nxt >= 0 else len(rest)
        gt = rest.find(">", key_at, limit)
        if gt < 0:
            problems.append("a <parameter= had no '>'; ignored it")
            at = nxt
            continue
        key = rest[key_at:gt].strip()
        close = rest.find(PARAM_CLOSE, gt + 1, limit)
        if close < 0:
            value = rest[gt + 1 : limit]
            if nxt >= 0 or value.strip():
                problems.append(f"<parameter={key[:80]}> was not closed")
        else:
            value = rest[gt + 1 : close]
        value = value[1:] if value.startswith("\n") else value
        value = value[:-1] if value.endswith("\n") else value
        raw[key] = value
        arguments[key] = _typed(value, types.get(key), key, problems, budget)
        at = nxt
    if not name:
        return ToolCall(name="", raw_arguments=json.dumps(raw, ensure_ascii=False),
                        arguments_error="the call had no function name (<function=NAME>)")
    return ToolCall(name=name, arguments=arguments, raw_arguments=json.dumps(raw, ensure_ascii=False))


def _schema_type(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "string"
    kind = schema.get("type", "string")
    if isinstance(kind, list):  # ["integer", "null"]: the first type that is not null
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind).strip().lower()


def _typed(value: str, schema: Any, key: str, problems: list[str], budget: RepairBudget) -> Any:
    """Type a raw parameter value from its JSON schema, as vLLM's ``qwen3_coder`` parser does."""
    if schema is None:
        return value
    kind = _schema_type(schema)
    if value.strip().lower() == "null" and kind not in ("string", "str", "text"):
        return None
    if kind in ("string", "str", "text", "varchar", "char", "enum"):
        return value
    text = value.strip()
    try:
        if kind.startswith(("int", "uint", "long", "short")):
            return int(text)
        if kind.startswith(("num", "float", "double")):
            number = float(text)
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    except ValueError:
        problems.append(f"parameter {key[:80]!r} is not a {kind}; kept the text")
        return value
    if kind in ("boolean", "bool", "binary"):
        if text.lower() not in ("true", "false"):
            problems.append(f"parameter {key[:80]!r} is not true or false; read it as false")
        return text.lower() == "true"
    if kind in ("object", "array", "dict", "list", "arr"):
        loaded, error = load_json(text, budget)
        if error is None:
            return loaded
        problems.append(f"parameter {key[:80]!r} is not JSON ({error[:80]}); kept the text")
        return value
    return value
