"""The ``pythonic`` format: calls written as a Python list, ``[func(a=1, b="x"), other()]``, as in BFCL's prompt mode.

Upstream followed: bfcl-eval 2026.3.23 (``constants/default_prompts.py`` and
``model_handler/utils.py``), the prompt-mode default ``ret_fmt=python&tool_call_tag=False&func_doc_fmt=json&
prompt_fmt=plaintext&style=classic``:

- the system prompt is BFCL's classic plaintext prompt, with the tools as ``json.dumps(docs, indent=4)``,
  put *before* the conversation's own system text (after a blank line), or sent as the system message;
- a reply is decoded as BFCL's ``default_decode_ast_prompting`` does: strip backticks, newlines and
  spaces, wrap in ``[...]`` when missing, strip ``'``, parse with `ast` (never ``eval``): a call or a list of
  calls; names may be dotted (``math.factorial``); only keyword arguments are kept; values are literals
  (a bare name reads as its text, a call without keywords as its source, a call with keywords as
  ``{name: {...}}``, as BFCL reads them);
- tool results go back in one user turn as ``<tool_response>\\n...\\n</tool_response>`` blocks joined by
  ``\\n`` (what Qwen's chat template writes for consecutive ``tool`` messages).

``strict=True`` decodes exactly as BFCL (a reply that is not wholly a call list has no calls); the default
also finds the list inside a fenced block, ``<TOOLCALL>`` tags or surrounding prose, as forgiving as the other
formats. Parsing never runs model text.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Sequence
from typing import Any

from qwenkit.llm.formats.base import (
    DEFAULT_MAX_CALLS,
    THINK_CLOSE,
    THINK_OPEN,
    ParsedReply,
    RenderedPrompt,
    TextFormat,
    split_think,
)
from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, ToolSpec, UserMessage

SYSTEM_PROMPT = (
    "You are an expert in composing functions.You are given a question and a set of possible functions. Based on "
    "the question, you will need to make one or more function/tool calls to achieve the purpose. If none of the "
    "functions can be used, point it out. If the given question lacks the parameters required by the function, "
    "also point it out.\n\nYou should only return the function calls in your response.\n\nIf you decide to invoke "
    "any of the function(s), you MUST put it in the format of [func_name1(params_name1=params_value1, "
    "params_name2=params_value2...), func_name2(params)].  You SHOULD NOT include any other text in the "
    "response.\n\nAt each turn, you should try your best to complete the tasks requested by the user within the "
    "current turn. Continue to output functions to call until you have fulfilled the user's request to the best "
    "of your ability. Once you have no more functions to call, the system will consider the current turn "
    "complete and proceed to the next turn or task.\n\nHere is a list of functions in json format that you can "
    "invoke.\n{functions}\n"
)
"""BFCL's ``formulate_system_prompt`` output for its default prompt-mode configuration."""

MAX_REPLY_CHARS = 200_000
"""Longer replies are not parsed (``ast`` on megabytes of model text is a denial of service)."""
_MAX_DEPTH = 40
_FENCE = re.compile(r"```(?:python|py|tool_code)?\s*\n?(.*?)```", re.DOTALL)
_TAG = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.DOTALL | re.IGNORECASE)
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class _Unsupported(ValueError):
    """A value BFCL's decoder would not read."""


def system_prompt(functions: Sequence[dict[str, Any]]) -> str:
    """BFCL's prompt-mode system prompt for these function docs (``name``, ``description``, ``parameters``)."""
    return SYSTEM_PROMPT.replace("{functions}", json.dumps(list(functions), indent=4))


class _PromptCache:
    """The system prompt of the last few tool lists, found by the identity of their specs.

    An agent renders the same `ToolSpec` objects at every step, and BFCL's prompt dumps them with ``indent=4``
    (the slow, pure-Python JSON encoder): that dump was an eighth of a multi-turn run's time.
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: dict[tuple[int, ...], tuple[tuple[ToolSpec, ...], str]] = {}

    def prompt(self, tools: Sequence[ToolSpec]) -> str:
        key = tuple(map(id, tools))
        hit = self._items.get(key)
        # The cached specs are held, so their ids are not reused while the entry lives; the check is for safety.
        if hit is not None and all(a is b for a, b in zip(hit[0], tools, strict=True)):
            return hit[1]
        text = system_prompt([{"name": t.name, "description": t.description, "parameters": t.parameters}
                              for t in tools])
        if len(self._items) >= self._size:
            self._items.pop(next(iter(self._items)))  # the oldest
        self._items[key] = (tuple(tools), text)
        return text


def _literal(value: Any) -> str:
    """A Python literal for a JSON value (``True``, ``None``, quoted strings)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def write_calls(calls: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """``[name(k=v, ...), ...]`` for ``(name, arguments)`` pairs."""
    return "[" + ", ".join(
        f"{name}({', '.join(f'{k}={_literal(v)}' for k, v in args.items())})" for name, args in calls) + "]"


def _name(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _value(node: ast.expr, depth: int = 0) -> Any:
    """BFCL's ``resolve_ast_by_type`` without ``eval``: literals, names as text, calls as text or dicts."""
    if depth > _MAX_DEPTH:
        raise _Unsupported("value nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is Ellipsis:
            return "..."
        if isinstance(node.value, (bytes, complex)):
            return repr(node.value)
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _value(node.operand, depth + 1)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
        raise _Unsupported("sign before a value that is not a number")
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_value(v, depth + 1) for v in node.elts]
    if isinstance(node, ast.Dict):
        return {str(_value(k, depth + 1)) if k is not None else "**": _value(v, depth + 1)
                for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        return {_name(node.func): {k.arg or "**": _value(k.value, depth + 1) for k in node.keywords}}
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        # BFCL evals arithmetic such as 3*4; only number literals are computed here, never names.
        left, right = _value(node.left, depth + 1), _value(node.right, depth + 1)
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (left, right)):
            try:
                return _BINOPS[type(node.op)](left, right)
            except (ArithmeticError, ValueError) as exc:
                raise _Unsupported(f"arithmetic failed: {exc}") from exc
        raise _Unsupported("arithmetic on values that are not numbers")
    if isinstance(node, ast.Subscript):
        return ast.unparse(node)
    raise _Unsupported(f"unsupported value {type(node).__name__}")


def decode(text: str) -> list[tuple[str, dict[str, Any], int]]:
    """BFCL's prompt-mode decoding: ``(name, keyword arguments, positional arguments dropped)`` per call.

    Raises:
        ValueError: ``text`` is not a call or a list of calls with readable values (``SyntaxError`` included).
    """
    text = text.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    tree = ast.parse(text.strip().strip("'"), mode="eval").body
    nodes = [tree] if isinstance(tree, ast.Call) else getattr(tree, "elts", None)
    if nodes is None:
        raise ValueError("not a list of calls")
    out = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            raise ValueError("an item of the list is not a call")
        out.append((_name(node.func), {k.arg or "**": _value(k.value) for k in node.keywords}, len(node.args)))
    return out


class PythonicFormat(TextFormat):
    """Tools as BFCL's prompt-mode system prompt; calls as a Python list of calls.

    Args:
        strict: Decode exactly as BFCL (see the module docstring).
        tools_in_prompt: Write the tools into the system prompt. False when the caller writes BFCL's system
            prompt itself (``qwenkit bench bfcl --mode prompt`` shows BFCL's own function docs).
        max_calls: Most calls read from one reply.
    """

    name = "pythonic"

    def __init__(
        self, *, strict: bool = False, tools_in_prompt: bool = True, max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        super().__init__(max_calls=max_calls)
        self.strict = strict
        self.tools_in_prompt = tools_in_prompt
        self._prompts = _PromptCache()

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> RenderedPrompt:
        out: list[Message] = []
        pending: list[str] = []
        for m in messages:
            if isinstance(m, ToolMessage):
                pending.append(f"<tool_response>\n{m.content}\n</tool_response>")
                continue
            if pending:
                out.append(UserMessage(content="\n".join(pending)))
                pending = []
            if isinstance(m, AssistantMessage) and m.tool_calls:
                out.append(AssistantMessage(content=self.render_calls(m.tool_calls)))
            else:
                out.append(m)
        if pending:
            out.append(UserMessage(content="\n".join(pending)))
        if tools and self.tools_in_prompt:
            prompt = self._prompts.prompt(tools)
            if out and isinstance(out[0], SystemMessage):
                out[0] = SystemMessage(content=prompt + "\n\n" + out[0].content)
            else:
                out.insert(0, SystemMessage(content=prompt))
        return RenderedPrompt(messages=out)

    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        text = write_calls([(c.name, c.arguments) for c in calls])
        # The parser splits thinking off first, so a think tag inside a string value would cut the calls; in
        # a Python string literal (the only place the tags can be) ``\x3c`` reads back as ``<``.
        for tag in (THINK_OPEN, THINK_CLOSE):
            text = text.replace(tag, "\\x3c" + tag[1:])
        return text

    def _candidates(self, text: str) -> list[str]:
        if self.strict:
            return [text]
        found = [text]
        found += [m.group(1) for m in _TAG.finditer(text)]
        found += [m.group(1) for m in _FENCE.finditer(text)]
        start, end = text.find("["), text.rfind("]")
        if 0 <= start < end:
            found.append(text[start:end + 1])
        return found

    def _parse(self, text: str) -> ParsedReply:
        reasoning, body, problems = split_think(text)
        if len(body) > MAX_REPLY_CHARS:
            return ParsedReply(content=body, reasoning=reasoning,
                               problems=[*problems, f"reply longer than {MAX_REPLY_CHARS} characters: not parsed"])
        error = ""
        for candidate in self._candidates(body):
            try:
                decoded = decode(candidate)
            except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError) as exc:
                error = error or f"{type(exc).__name__}: {str(exc)[:120]}"
                continue
            calls = []
            for name, args, dropped in decoded[: self.max_calls]:
                if dropped:
                    problems.append(f"{name}: {dropped} positional argument(s) dropped (only keywords are read)")
                calls.append(ToolCall(name=name, arguments=args,
                                      raw_arguments=json.dumps(args, ensure_ascii=False, default=str)))
            if len(decoded) > self.max_calls:
                problems.append(f"the reply had {len(decoded)} calls; kept the first {self.max_calls} (max_calls)")
            return ParsedReply(content="", reasoning=reasoning, tool_calls=calls, problems=problems)
        if body.strip() and ("(" in body):
            problems.append(f"no call list could be read ({error})")
        return ParsedReply(content=body.strip(), reasoning=reasoning, problems=problems)
