"""Forgiving reading of tool-call arguments and replies, shared by the text prompt formats.

Models write arguments in many slightly wrong ways: single quotes, trailing commas, a missing closing
brace, a comment after the object, a fenced code block instead of JSON. `parse_arguments` reads them
in this order and never raises:

1. strict ``json``;
2. ``json5`` (single quotes, unquoted keys, trailing commas, comments);
3. a complete JSON value followed by stray text (the stray text is ignored);
4. ``json_repair`` (missing braces or quotes), only for text that starts like a JSON object or array.

A fenced block is unwrapped first: a ```json fence (or a bare fence holding JSON) is read as JSON, a
```py / ```python / bare fence holding code becomes ``{"code": body}`` (the argument of a code tool,
as Qwen-Agent's ``code_interpreter`` takes it). A value that is not an object (a list, a number, plain
text) is an error; the caller keeps the raw text so the model can be shown what it wrote.

The module also holds the few reply helpers every text format needs (``<think>`` splitting, the
token-limit check), so that the formats stay about their own markers.
"""

from __future__ import annotations

import json
import re
from typing import Any

import json5
from json_repair import repair_json

from qwenkit.llm.formats.base import ParsedReply
from qwenkit.types import ToolCall, ToolSpec

CODE_FENCE_LANGS = frozenset({"", "py", "python", "python3", "py3", "ipython"})
"""Fence languages whose body is taken as the ``code`` argument."""

JSON_FENCE_LANGS = frozenset({"json", "json5", "jsonc"})
"""Fence languages whose body is read as JSON."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\n?(.*?)(?:\n?[ \t]*```|\Z)", re.DOTALL)
_JSON_START = tuple('{["-0123456789')
_MAX_UNCLOSED = 200

TRUNCATED = "the reply hit the token limit (max_tokens) before this call was complete"


def parse_arguments(text: str) -> tuple[dict[str, Any], str | None]:
    """Read the arguments a model wrote for one call.

    Args:
        text: The argument text as the model wrote it.

    Returns:
        ``(arguments, None)`` when an object could be read (empty text gives ``{}``), else
        ``({}, reason)`` with a short reason the model can act on. Never raises.
    """
    try:
        return _parse_arguments(text)
    except Exception as exc:  # last resort: a parser bug must not crash the loop
        return {}, f"could not read the arguments ({type(exc).__name__})"


def load_json(text: str) -> tuple[Any, str | None]:
    """Read one JSON value forgivingly (json, json5, a value with stray text after it, json_repair).

    Args:
        text: Text that should hold one JSON value.

    Returns:
        ``(value, None)`` on success, else ``(None, reason)``. Never raises.
    """
    try:
        return _load_json(text.strip())
    except Exception as exc:  # RecursionError on absurd nesting, a bug in a repair library, ...
        return None, f"could not read JSON ({type(exc).__name__})"


def arguments_text(call: ToolCall) -> str:
    """Return the arguments of ``call`` as the model should see them again in its own past turn.

    The raw text is preferred (it is what the model wrote); calls built elsewhere fall back to JSON.
    """
    raw = call.raw_arguments.strip()
    return raw if raw else json.dumps(call.arguments, ensure_ascii=False)


def make_call(name: str, raw_arguments: str) -> ToolCall:
    """Build a `ToolCall` from a name and argument text as written by the model (fresh id)."""
    arguments, error = parse_arguments(raw_arguments)
    return ToolCall(name=name.strip(), arguments=arguments, raw_arguments=raw_arguments.strip(), arguments_error=error)


def is_code_tool(spec: ToolSpec) -> bool:
    """Whether ``spec`` takes exactly one string argument named ``code`` (a code interpreter).

    Qwen-Agent asks for a fenced code block instead of JSON for its ``code_interpreter``; qwenkit
    decides by the shape of the parameters, not by the tool's name.
    """
    props = spec.parameters.get("properties")
    if not isinstance(props, dict) or list(props) != ["code"]:
        return False
    code = props["code"]
    return isinstance(code, dict) and code.get("type", "string") == "string"


def split_think(text: str) -> tuple[str, str, list[str]]:
    """Split a leading ``<think>...</think>`` block (Qwen3 thinking) off a reply.

    Servers without a reasoning parser return the thinking in the text; when the template opened the
    block itself the text has only the closing tag.

    Returns:
        ``(reasoning, rest, problems)``.
    """
    close = text.find("</think>")
    if close >= 0:
        head, rest = text[:close], text[close + len("</think>") :]
        opened = head.find("<think>")
        if opened >= 0:
            rest = head[:opened] + rest
            head = head[opened + len("<think>") :]
        return head.strip(), rest, []
    opened = text.find("<think>")
    if opened >= 0 and not text[:opened].strip():
        return text[opened + len("<think>") :].strip(), "", ["the reply ended inside <think>; no answer"]
    return "", text, []


def mark_truncated(reply: ParsedReply, finish_reason: str | None, *, last_call_complete: bool) -> ParsedReply:
    """Turn the last call of a reply cut off by the token limit into a call with an argument error.

    Running a half-written call (truncated code, a guessed closing brace) is worse than asking the
    model to write it again, so the registry is given an error to report instead.

    Args:
        reply: The parsed reply.
        finish_reason: The backend's finish reason; only ``"length"`` changes anything.
        last_call_complete: The format saw the call's closing marker, so it is whole.
    """
    if finish_reason != "length" or not reply.tool_calls or last_call_complete:
        return reply
    last = reply.tool_calls[-1]
    cut = last.model_copy(update={"arguments": {}, "arguments_error": TRUNCATED})
    return reply.model_copy(
        update={
            "tool_calls": [*reply.tool_calls[:-1], cut],
            "problems": [*reply.problems, f"{TRUNCATED}: {last.name}"],
        }
    )


# --------------------------------------------------------------------------------------- internals


def _parse_arguments(text: str) -> tuple[dict[str, Any], str | None]:
    t = text.strip()
    if not t:
        return {}, None
    if t.startswith("```") or (not t.startswith(("{", "[")) and "```" in t):
        fence = _FENCE.search(t)
        if fence is not None:
            lang, body = fence.group(1).lower(), fence.group(2)
            if lang in JSON_FENCE_LANGS:
                return _as_object(*_load_json(body.strip()))
            if lang == "" and body.lstrip().startswith("{"):
                value, error = _load_strict(body.strip())
                if error is None and isinstance(value, dict):
                    return _as_object(value, None)
            if lang in CODE_FENCE_LANGS:
                return {"code": body}, None
            return {}, f"a ```{lang} block is not a JSON object"
    return _as_object(*_load_json(t))


def _as_object(value: Any, error: str | None) -> tuple[dict[str, Any], str | None]:
    if error is not None:
        return {}, error
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}, None
    return {}, f"expected a JSON object, got {_kind(value)}"


def _load_strict(t: str) -> tuple[Any, str | None]:
    try:
        return json.loads(t), None
    except (ValueError, RecursionError) as exc:
        first = exc
    try:
        return json5.loads(t), None
    except Exception:
        return None, _describe(first, t)


def _load_json(t: str) -> tuple[Any, str | None]:
    value, error = _load_strict(t)
    if error is None or not t.startswith(("{", "[")):
        return value, error
    try:  # a whole value followed by a comment or a hallucinated line
        return json.JSONDecoder().raw_decode(t)[0], None
    except (ValueError, RecursionError):
        pass
    unclosed = t.count("{") + t.count("[") - t.count("}") - t.count("]")
    if unclosed > _MAX_UNCLOSED:  # json_repair is quadratic in the nesting it must close
        return None, error
    try:
        repaired = repair_json(t, return_objects=True)
    except Exception:
        return None, error
    if isinstance(repaired, dict | list):
        return repaired, None
    return None, error


def _describe(exc: BaseException, t: str) -> str:
    if not t.startswith(_JSON_START) and not t.startswith(("true", "false", "null", '"')):
        return "expected a JSON object, got plain text"
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    return str(exc) or type(exc).__name__


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
