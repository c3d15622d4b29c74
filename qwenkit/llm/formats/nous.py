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

Reasoning (Qwen3 thinking) is read from ``<think>...</think>`` (or from a lone ``</think>`` when the
template opened the block) into ``reasoning``; ``<tool_call>`` written inside it is reported, never
run. When rendering, the reasoning of the turns after the last user query is written back in front of
their text exactly as Qwen3's template writes it, and earlier reasoning is dropped, as that template
does; the rendered messages carry no ``reasoning`` field. An empty ``<tool_call></tool_call>`` becomes
a call with an argument error, so the model is told (Qwen-Agent runs it as a call to a tool named
``""``, which fails). Without tools, past calls and results are written as Qwen-Agent writes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from qwenkit.llm.formats._json import RepairBudget, call_json, load_json, parse_arguments
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
from qwenkit.llm.formats.qwen import has_chinese
from qwenkit.types import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

EMPTY_CALL = "the <tool_call> block was empty (write {\"name\": ..., \"arguments\": {...}} inside it)"

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
"""The Hermes call markers; the one definition every module that writes or reads them imports."""
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"

_MARKERS = (CALL_OPEN, CALL_CLOSE, RESPONSE_OPEN, "<think>", "</think>", "<code>")
"""Text the parser acts on wherever it appears; `NousFormat.render_calls` escapes it inside JSON."""

_NAME = re.compile(r'"name"\s*+:\s*+"([^"\\]*+(?:\\.[^"\\]*+)*+)"')  # possessive, unrolled: one pass
_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:')


def tool_system(tools: Sequence[ToolSpec]) -> str:
    """Return the ``# Tools`` system text for ``tools``."""
    descs = "\n".join(json.dumps(t.openai_schema(), ensure_ascii=False) for t in tools)
    return FN_CALL_TEMPLATE.format(tool_descs=descs)


def call_block(call: ToolCall, markers: tuple[str, ...] = ()) -> str:
    """Return ``<tool_call>`` text for ``call`` (arguments as an object, or the raw text if unreadable).

    Args:
        call: The call.
        markers: Marker texts to escape inside the JSON (see `call_json`); none when re-rendering a
            model's past turn, which is written as it was.
    """
    arguments: Any = call.arguments
    if call.arguments_error is not None and call.raw_arguments:
        arguments = call.raw_arguments
    body = call_json({"name": call.name, "arguments": arguments}, markers)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


class NousFormat(TextFormat):
    """Hermes-style tool calling, the format Qwen2.5/Qwen3 chat templates use for ``tools``.

    Rendering writes it in plain messages, so it works on servers without a tool parser. Reasoning of
    the turns after the last user query is written back as ``<think>`` blocks, as Qwen3's template
    keeps it; earlier reasoning is dropped (`keep_recent_reasoning`).

    Args:
        tool_choice: ``auto`` (default); ``none`` (tools removed, past calls written as plain text, as
            Qwen-Agent does); ``required`` (the reply is opened with ``<tool_call>\\n``); or a tool name
            (the reply is opened with ``<tool_call>\\n{"name": "NAME", "arguments": ``). A name not
            offered is a `ConfigError` at render time.
        max_calls: Most calls read from one reply; further calls are dropped and reported.
    """

    name: str = "nous"
    call_markers = (CALL_OPEN,)

    def __init__(self, *, tool_choice: str | None = None, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        super().__init__(max_calls=max_calls)
        self.tool_choice = tool_choice

    def render(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], *, tool_choice: str | None = None
    ) -> RenderedPrompt:
        """Write the conversation with ``<tools>`` in the system message and results as user turns.

        Args:
            messages: System?, user, assistant, tool, ... messages.
            tools: The tools the model may call. With none (or ``tool_choice="none"``) no system text
                is added and past calls and results are written as plain text (`tool_turns_as_text`).
            tool_choice: Overrides the format's ``tool_choice`` for this prompt.

        Returns:
            The messages to send (no stop words); ``continue_final`` and ``prefill`` when a call is
            forced.

        Raises:
            ConfigError: ``tool_choice`` names a tool not in ``tools``.
        """
        choice = check_tool_choice(tool_choice or self.tool_choice, tools, self.name)
        messages = keep_recent_reasoning(messages)
        if not tools or choice == "none":
            chinese = any(isinstance(m, SystemMessage | UserMessage) and has_chinese(m.content) for m in messages)
            return RenderedPrompt(messages=tool_turns_as_text(messages, "zh" if chinese else "en"))
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
                    out[-1] = AssistantMessage(content=last.content + sep + text)
                else:
                    out.append(AssistantMessage(content=text))
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
        out = self._add_system_text(out, tool_system(list(tools)))
        if choice is None:
            return RenderedPrompt(messages=out)
        prefill = CALL_OPEN + "\n"
        if choice != "required":
            prefill += '{"name": ' + json.dumps(choice, ensure_ascii=False) + ', "arguments": '
        if out and isinstance(out[-1], AssistantMessage) and out[-1].content:
            prefill = "\n" + prefill
        return RenderedPrompt(messages=prefill_reply(out, prefill), continue_final=True, prefill=prefill)

    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        """Return ``<tool_call>`` blocks for ``calls``, one per call, separated by newlines."""
        return "\n".join(call_block(call, _MARKERS) for call in calls)

    def _parse(self, text: str) -> ParsedReply:
        """Read ``<tool_call>`` blocks (and ``<think>``) from reply text.

        Text before the first call is content; text after a call is dropped (and noted), as Qwen-Agent
        and vLLM's hermes parser do; ``<tool_response>`` written by the model and everything after it is
        ignored; an unclosed last block is still read.
        """
        return _parse(text, self.max_calls)

    def _last_call_complete(self, text: str) -> bool:
        return text.rstrip().endswith(CALL_CLOSE)


# ----------------------------------------------------------------------------------------- parsing


def _parse(text: str, max_calls: int) -> ParsedReply:
    budget = RepairBudget()
    reasoning, text, problems = reply_body(text, RESPONSE_OPEN)

    if CALL_OPEN not in text and (fenced := _fenced_calls(text, problems, max_calls, budget)) is not None:
        return fenced.model_copy(update={"reasoning": reasoning})
    parts = text.split(CALL_OPEN)
    content = [parts[0]]
    dropped = False
    calls: list[ToolCall] = []
    found = 0
    for part in parts[1:]:
        body, closed, tail = part.partition(CALL_CLOSE)
        if not closed and body.strip():
            problems.append("a <tool_call> was not closed; read it to the end of the reply")
        if body.strip():
            found += 1
            if found <= max_calls:  # calls past the limit are counted, never parsed
                calls.append(_read_call(body, problems, budget))
        elif closed:  # as Qwen-Agent: the model is told, rather than the reply silently doing nothing
            found += 1
            if found <= max_calls:
                calls.append(ToolCall(name="", raw_arguments="", arguments_error=EMPTY_CALL))
            problems.append("an empty <tool_call> was answered with an error")
        dropped = dropped or bool(tail.strip())
    if dropped:  # as Qwen-Agent and vLLM: text is allowed before the calls, not after them
        problems.append("ignored text written after a tool call (write it before the calls)")
    if found > max_calls:
        problems.append(too_many_calls(found, max_calls))
    return ParsedReply(
        content="\n".join(c.strip() for c in content if c.strip()),
        reasoning=reasoning,
        tool_calls=calls,
        problems=problems,
    )


_FENCE_LANGS = ("json5", "json", "tool_call", "javascript")


def _fence_blocks(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, body)`` of each fenced block: ```json, ```json5, ```tool_call, ```javascript or a
    bare fence, then a newline; the body runs to the next ``` (a block without one is not a block).

    One left-to-right pass with ``str.find`` (the regular expression it replaces backtracked
    quadratically on ``` followed by a long run of blanks).
    """
    blocks: list[tuple[int, int, str]] = []
    n = len(text)
    at = text.find("```")
    while at >= 0:
        i = at + 3
        while i < n and text[i] in " \t":
            i += 1
        lang = next((w for w in _FENCE_LANGS if text.startswith(w, i)), "")
        j = i + len(lang)
        while j < n and text[j] in " \t":
            j += 1
        if lang and (j >= n or text[j] != "\n"):  # the language was not a word of its own: try without it
            lang, j = "", i
        if j < n and text[j] == "\n":
            close = text.find("```", j + 1)
            if close < 0:  # no closing fence after this opening, so none after any later one either
                break
            blocks.append((at, close + 3, text[j + 1 : close]))
            at = text.find("```", close + 3)
        else:
            at = text.find("```", at + 1)
    return blocks


def _fenced_calls(text: str, problems: list[str], max_calls: int, budget: RepairBudget) -> ParsedReply | None:
    """Read calls a small model wrote as fenced (or bare) JSON ``{"name", "arguments"}`` without tags.

    Returns ``None`` when the reply holds no such object, so it stays a plain answer.
    """
    blocks = _fence_blocks(text)
    if not blocks and text.strip().startswith("{"):
        blocks = [(0, len(text), text)]
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    for start, end, body in blocks:
        value, error = load_json(body, budget)
        if isinstance(value, dict) and "name" in value and ("arguments" in value or "parameters" in value):
            if len(spans) < max_calls:
                calls.append(_read_call(body, problems, budget, (value, error)))
            spans.append((start, end))
    if not calls:
        return None
    problems.append("read a call written as a JSON block without <tool_call> tags")
    if len(spans) > max_calls:
        problems.append(too_many_calls(len(spans), max_calls))
    content, pos = [], 0
    for start, end in spans:
        content.append(text[pos:start])
        pos = end
    content.append(text[pos:])
    return ParsedReply(content="\n".join(c.strip() for c in content if c.strip()), tool_calls=calls,
                       problems=problems)


def _read_call(
    body: str, problems: list[str], budget: RepairBudget, loaded: tuple[Any, str | None] | None = None
) -> ToolCall:
    code: str | None = None
    if "<code>" in body:  # Qwen-Agent's code mode: {"name": ..., "arguments": {"code": ""}}<code>...</code>
        body, _, rest = body.partition("<code>")
        code = rest.partition("</code>")[0].strip("\n")
        loaded = None
    value, error = loaded if loaded is not None else load_json(body, budget)
    if isinstance(value, dict) and value.get("name") is not None:
        name = str(value["name"]).strip()
        raw: Any = value.get("arguments", value.get("parameters", {}))
        if raw is None:
            raw = {}
        if isinstance(raw, str):  # arguments encoded twice, as the OpenAI API sends them
            arguments, arg_error = parse_arguments(raw, budget)
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
        problems.append(f"read the call to {name[:80]!r} from broken JSON")
        args_at = _ARGUMENTS.search(body)
        raw_text = body[args_at.end() :].strip() if args_at else ""
        if raw_text.endswith("}"):  # the brace that closed the whole call
            raw_text = raw_text[:-1].rstrip()
        arguments, arg_error = parse_arguments(raw_text, budget)
    if code is not None and arg_error is None:
        arguments = {**arguments, "code": code}
    return ToolCall(name=name, arguments=arguments, raw_arguments=raw_text, arguments_error=arg_error)


def _unescape(s: str) -> str:
    try:
        value = json.loads(f'"{s}"')
    except ValueError:
        return s
    return value if isinstance(value, str) else s
