"""Qwen's function-calling format with the ✿FUNCTION✿ / ✿ARGS✿ / ✿RESULT✿ / ✿RETURN✿ markers.

Upstream template followed: ``QwenLM/Qwen-Agent``
``qwen_agent/llm/fncall_prompts/qwen_fncall_prompt.py`` (``QwenFnCallPrompt``):

- the system text ``FN_CALL_TEMPLATE_INFO_{EN,ZH}`` + ``FN_CALL_TEMPLATE_FMT[_PARA]_{EN,ZH}`` word for
  word, appended to the system message after a blank line (or sent as the system message), with tool
  lines from ``get_function_description`` (``### {human name}\\n\\n{name}: {description} Parameters:
  {schema} {args format}``, the code-block hint for a code tool) and names joined by ``,``;
- ``preprocess_fncall_messages``: calls and results are folded into the assistant turn as
  ``✿FUNCTION✿: name\\n✿ARGS✿: args`` (``\\n`` before it when the turn already has text), each result as
  ``\\n✿RESULT✿: ...`` followed by one ``\\n✿RETURN✿: `` after the last result, the answer written right
  after it; on the open turn the trailing ``": "`` is removed (it may merge with the next token) so
  the model continues after ``✿RETURN✿``;
- ``postprocess_fncall_messages``: a leading ``:`` of the continuation is dropped, text before the
  first ``✿FUNCTION✿`` is content, several ``✿ARGS✿`` after one name are several calls, incomplete
  trailing markers are removed, only the first call is kept when parallel calls are off;
- stop words ``FN_STOP_WORDS = ['✿RESULT✿', '✿RETURN✿']``.

Chinese is chosen (``lang="auto"``) when a system or user message has a CJK character, as Qwen-Agent's
``has_chinese_chars`` does. Reasoning (``<think>``) is read into ``reasoning`` but not written back:
the upstream template has no place for it (``QwenFnCallPrompt`` drops ``reasoning_content``).
``tool_choice`` naming a tool prefills ``✿FUNCTION✿: NAME`` as Qwen-Agent's ``function_choice`` does;
``none``, or a conversation with calls but no tools, writes past calls as plain text in Qwen-Agent's
words (`tool_turns_as_text`). ``parallel`` defaults to True here; Qwen-Agent's default is False.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Literal

from qwenkit.llm.formats._json import RepairBudget, arguments_text, call_json, is_code_tool, make_call
from qwenkit.llm.formats.base import (
    DEFAULT_MAX_CALLS,
    ParsedReply,
    RenderedPrompt,
    TextFormat,
    check_tool_choice,
    prefill_reply,
    split_think,
    too_many_calls,
    tool_turns_as_text,
)
from qwenkit.types import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

FN_NAME = "✿FUNCTION✿"
FN_ARGS = "✿ARGS✿"
FN_RESULT = "✿RESULT✿"
FN_EXIT = "✿RETURN✿"
FN_STOP_WORDS = (FN_RESULT, FN_EXIT)

FN_CALL_TEMPLATE_INFO_ZH = """# 工具

## 你拥有如下工具：

{tool_descs}"""

FN_CALL_TEMPLATE_INFO_EN = """# Tools

## You have access to the following tools:

{tool_descs}"""

FN_CALL_TEMPLATE_FMT_ZH = f"""## 你可以在回复中插入零次、一次或多次以下命令以调用工具：

{FN_NAME}: 工具名称，必须是[{{tool_names}}]之一。
{FN_ARGS}: 工具输入
{FN_RESULT}: 工具结果
{FN_EXIT}: 根据工具结果进行回复，需将图片用![](url)渲染出来"""

FN_CALL_TEMPLATE_FMT_EN = f"""## When you need to call a tool, please insert the following command in your reply, \
which can be called zero or multiple times according to your needs:

{FN_NAME}: The tool to use, should be one of [{{tool_names}}]
{FN_ARGS}: The input of the tool
{FN_RESULT}: Tool results
{FN_EXIT}: Reply based on tool results. Images need to be rendered as ![](url)"""

FN_CALL_TEMPLATE_FMT_PARA_ZH = f"""## 你可以在回复中插入以下命令以并行调用N个工具：

{FN_NAME}: 工具1的名称，必须是[{{tool_names}}]之一
{FN_ARGS}: 工具1的输入
{FN_NAME}: 工具2的名称
{FN_ARGS}: 工具2的输入
...
{FN_NAME}: 工具N的名称
{FN_ARGS}: 工具N的输入
{FN_RESULT}: 工具1的结果
{FN_RESULT}: 工具2的结果
...
{FN_RESULT}: 工具N的结果
{FN_EXIT}: 根据工具结果进行回复，需将图片用![](url)渲染出来"""

FN_CALL_TEMPLATE_FMT_PARA_EN = f"""## Insert the following command in your reply when you need to call N tools \
in parallel:

{FN_NAME}: The name of tool 1, should be one of [{{tool_names}}]
{FN_ARGS}: The input of tool 1
{FN_NAME}: The name of tool 2
{FN_ARGS}: The input of tool 2
...
{FN_NAME}: The name of tool N
{FN_ARGS}: The input of tool N
{FN_RESULT}: The result of tool 1
{FN_RESULT}: The result of tool 2
...
{FN_RESULT}: The result of tool N
{FN_EXIT}: Reply based on tool results. Images need to be rendered as ![](url)"""

FN_CALL_TEMPLATE = {
    "zh": FN_CALL_TEMPLATE_INFO_ZH + "\n\n" + FN_CALL_TEMPLATE_FMT_ZH,
    "en": FN_CALL_TEMPLATE_INFO_EN + "\n\n" + FN_CALL_TEMPLATE_FMT_EN,
    "zh_parallel": FN_CALL_TEMPLATE_INFO_ZH + "\n\n" + FN_CALL_TEMPLATE_FMT_PARA_ZH,
    "en_parallel": FN_CALL_TEMPLATE_INFO_EN + "\n\n" + FN_CALL_TEMPLATE_FMT_PARA_EN,
}

TOOL_DESC = {
    "zh": "### {name_for_human}\n\n{name_for_model}: {description_for_model} 输入参数：{parameters} {args_format}",
    "en": "### {name_for_human}\n\n{name_for_model}: {description_for_model} Parameters: {parameters} {args_format}",
}
ARGS_FORMAT = {
    "zh": {"json": "此工具的输入应为JSON对象。", "code": "此工具的输入应为Markdown代码块。"},
    "en": {
        "json": "Format the arguments as a JSON object.",
        "code": "Enclose the code within triple backticks (`) at the beginning and end of the code.",
    },
}

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NAME = re.compile(r"✿FUNCTION✿[ \t]*[:：]?")
_ARGS = re.compile(r"✿ARGS✿[ \t]*[:：]?")
_STOP = re.compile(r"✿RESULT✿|✿RETURN✿")
_SPECIAL = (FN_NAME, FN_ARGS, FN_RESULT, FN_EXIT)
_ESCAPED = ("✿", "<think>", "</think>")
"""Text the parser acts on wherever it appears: any ✿ (whole or cut-off markers) and ``<think>``."""


def has_chinese(text: str) -> bool:
    """Whether ``text`` has a CJK ideograph."""
    return _CJK.search(text) is not None


def tool_description(spec: ToolSpec, lang: Literal["en", "zh"]) -> str:
    """Return one tool's entry in the system text (Qwen-Agent's ``get_function_description``)."""
    return (
        TOOL_DESC[lang]
        .format(
            name_for_human=spec.display_name,
            name_for_model=spec.name,
            description_for_model=spec.description,
            parameters=json.dumps(spec.parameters, ensure_ascii=False),
            args_format=ARGS_FORMAT[lang]["code" if is_code_tool(spec) else "json"],
        )
        .rstrip()
    )


def tool_system(tools: Sequence[ToolSpec], lang: Literal["en", "zh"], parallel: bool) -> str:
    """Return the function-calling system text for ``tools``."""
    template = FN_CALL_TEMPLATE[lang + ("_parallel" if parallel else "")]
    return template.format(
        tool_descs="\n\n".join(tool_description(t, lang) for t in tools),
        tool_names=",".join(t.name for t in tools),
    )


class QwenFormat(TextFormat):
    """Qwen-Agent's ✿FUNCTION✿ format.

    Args:
        parallel: Use the parallel-calls system text and keep every call of a reply; when False only
            the first call of a reply is kept.
        lang: Language of the system text; ``"auto"`` picks Chinese when a system or user message has
            a CJK character.
        tool_choice: ``auto`` (default); ``none`` (tools removed, past calls written as plain text, as
            Qwen-Agent's ``function_choice="none"``); ``required`` (the reply is opened with
            ``✿FUNCTION✿: ``) or a tool name (opened with ``✿FUNCTION✿: NAME``, as Qwen-Agent). A name
            not offered is a `ConfigError` at render time.
        max_calls: Most calls read from one reply; further calls are dropped and reported.
    """

    name: str = "qwen"
    call_markers = (FN_NAME,)

    def __init__(
        self,
        parallel: bool = True,
        lang: Literal["auto", "en", "zh"] = "auto",
        *,
        tool_choice: str | None = None,
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        if lang not in ("auto", "en", "zh"):
            raise ValueError(f"lang must be 'auto', 'en' or 'zh', not {lang!r}")
        super().__init__(max_calls=max_calls)
        self.parallel = parallel
        self.tool_choice = tool_choice
        self.lang: Literal["auto", "en", "zh"] = lang

    def language(self, messages: Sequence[Message]) -> Literal["en", "zh"]:
        """Return the language of the system text for ``messages``."""
        if self.lang != "auto":
            return self.lang
        chinese = any(isinstance(m, SystemMessage | UserMessage) and has_chinese(m.content) for m in messages)
        return "zh" if chinese else "en"

    def render(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], *, tool_choice: str | None = None
    ) -> RenderedPrompt:
        """Write the conversation with the tools in the system message and calls folded in the turn.

        Args:
            messages: System?, user, assistant, tool, ... messages.
            tools: The tools the model may call. With none (or ``tool_choice="none"``) no system text
                is added and past calls and results are written as plain text, as Qwen-Agent does.
            tool_choice: Overrides the format's ``tool_choice`` for this prompt.

        Returns:
            The messages, the ✿RESULT✿/✿RETURN✿ stop words, and ``continue_final`` when the
            conversation ends inside an assistant turn (it then ends with ``✿RETURN✿``) or a call is
            forced (then ``prefill`` is set).

        Raises:
            ConfigError: ``tool_choice`` names a tool not in ``tools``.
        """
        choice = check_tool_choice(tool_choice or self.tool_choice, tools, self.name)
        lang = self.language(messages)
        if not tools or choice == "none":
            return RenderedPrompt(messages=tool_turns_as_text(messages, lang))
        out: list[Message] = []
        fold: str | None = None
        for m in messages:
            if isinstance(m, AssistantMessage):
                fold = _fold_assistant(fold, m)
            elif isinstance(m, ToolMessage):
                fold = _fold_result(fold or "", m)
            else:
                if fold is not None:
                    out.append(AssistantMessage(content=fold))
                    fold = None
                out.append(m)
        if fold is not None:
            if fold.endswith(f"{FN_EXIT}: "):
                fold = fold[:-2]
            out.append(AssistantMessage(content=fold))
        out = self._add_system_text(out, tool_system(list(tools), lang, self.parallel))
        if choice is None:
            return RenderedPrompt(messages=out, stop=list(FN_STOP_WORDS), continue_final=fold is not None)
        # As Qwen-Agent's preprocess_fncall_messages: ": \n" after an open ✿RETURN✿, "\n" after other text.
        prefill = f"{FN_NAME}: " + ("" if choice == "required" else choice)
        if fold is not None and fold:
            prefill = (": \n" if fold.endswith(FN_EXIT) else "\n") + prefill
        return RenderedPrompt(messages=prefill_reply(out, prefill), stop=list(FN_STOP_WORDS), continue_final=True,
                              prefill=prefill)

    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        """Return ``✿FUNCTION✿: name`` / ``✿ARGS✿: {...}`` lines for ``calls``, one pair per call.

        With ``parallel=False`` the parser reads back only the first call, as the model is told.
        """
        return "\n".join(f"{FN_NAME}: {call.name}\n{FN_ARGS}: {_call_arguments(call)}" for call in calls)

    def _parse(self, text: str) -> ParsedReply:
        """Read a reply in the ✿FUNCTION✿ format.

        The reply is cut at the first ✿RESULT✿ or ✿RETURN✿ (results come from the tools), so a reply
        whose stop word the server swallowed reads the same as one that kept it.
        """
        problems: list[str] = []
        reasoning, text, more = split_think(text)
        problems += more
        if text.startswith((": ", "： ")):
            text = text[2:]
        elif text.startswith((":", "：")):
            text = text[1:]

        stop = _STOP.search(text)
        if stop is not None:
            if _strip_specials(text[stop.end() :]).lstrip(":：").strip():
                problems.append("ignored what the model wrote after ✿RESULT✿/✿RETURN✿ (results come from tools)")
            text = text[: stop.start()]
        text = _strip_partial_special(text)

        names = list(_NAME.finditer(text))
        if not names:
            return ParsedReply(content=_strip_specials(text), reasoning=reasoning, problems=problems)

        content = _strip_specials(text[: names[0].start()])
        found: list[tuple[str, str]] = []  # (name, argument text): cheap to collect, parsed only if kept
        for k, m in enumerate(names):
            end = names[k + 1].start() if k + 1 < len(names) else len(text)
            part = text[m.end() : end]
            pieces = _ARGS.split(part)
            name = _strip_specials(pieces[0])
            if len(pieces) == 1:
                if not name:
                    problems.append("ignored an empty ✿FUNCTION✿")
                    continue
                problems.append(f"{FN_NAME}: {name[:80]} has no {FN_ARGS}; called with no arguments")
            found += [(name, args) for args in pieces[1:] or [""]]
        if not self.parallel and len(found) > 1:
            problems.append(f"parallel calls are off; kept the first of {len(found)} calls")
            found = found[:1]
        elif len(found) > self.max_calls:
            problems.append(too_many_calls(len(found), self.max_calls))
            found = found[: self.max_calls]
        budget = RepairBudget()
        calls = [make_call(name, args, budget) for name, args in found]
        return ParsedReply(content=content, reasoning=reasoning, tool_calls=calls, problems=problems)


# --------------------------------------------------------------------------------------- rendering


def _fold_assistant(fold: str | None, m: AssistantMessage) -> str:
    text = fold if fold is not None else ""
    text += m.content
    for call in m.tool_calls:
        args = arguments_text(call)
        if args.startswith("```"):
            args = "\n" + args  # as upstream, for markdown rendering
        text += ("\n" if text else "") + f"{FN_NAME}: {call.name}\n{FN_ARGS}: {args}"
    return text


def _call_arguments(call: ToolCall) -> str:
    """Argument text of a call written by `QwenFormat.render_calls`: JSON that reads back the same."""
    if call.arguments_error is not None and call.raw_arguments.strip():
        return call.raw_arguments.strip()
    return call_json(call.arguments, _ESCAPED)


def _fold_result(fold: str, m: ToolMessage) -> str:
    exit_ = f"\n{FN_EXIT}: "
    if fold.endswith(exit_):
        fold = fold[: -len(exit_)]
    return fold + f"\n{FN_RESULT}: {m.content}{exit_}"


# ----------------------------------------------------------------------------------------- parsing


def _strip_partial_special(text: str) -> str:
    """Remove a marker cut off at the end of the text (``...✿FUNC``), as upstream does when streaming."""
    stripped = text.rstrip()
    for s in _SPECIAL:
        if stripped.endswith(s):
            return stripped[: -len(s)]
    trail = stripped.rfind("✿")
    if trail >= 0 and any(s.startswith(stripped[trail:]) for s in _SPECIAL):
        return stripped[:trail]
    return text


def _strip_specials(text: str) -> str:
    """Trim a piece of text and drop marker fragments left in it."""
    for s in _SPECIAL:
        text = text.replace(s, "")
    return text.lstrip("\n").strip()
