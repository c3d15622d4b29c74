"""Forgiving reading of tool-call arguments, shared by the prompt formats, in time linear in the text.

Models write arguments in many slightly wrong ways: single quotes, trailing commas, a missing closing
brace, a comment after the object, a fenced code block instead of JSON. `parse_arguments` reads them
in this order and never raises:

1. strict ``json``;
2. ``json5`` (single quotes, unquoted keys, trailing commas, comments);
3. Python triple-quoted strings (three double quotes each side: Qwen2.5-Coder's way to write code) as JSON
   strings;
4. a complete JSON value followed by stray text (the stray text is ignored);
5. ``json_repair`` (missing braces or quotes), only for text that starts like a JSON object or array.

A fenced block is unwrapped first: a ```json fence (or a bare fence holding JSON) is read as JSON, a
```py / ```python / bare fence holding code becomes ``{"code": body}`` (the argument of a code tool,
as Qwen-Agent's ``code_interpreter`` takes it). A value that is not an object (a list, a number, plain
text) is an error; the caller keeps the raw text so the model can be shown what it wrote.

Steps 1 and 3 are C code and linear. ``json5`` is a pure-Python parser (tens of microseconds per
character) and ``json_repair`` is quadratic on some inputs (``{a: b}{a: b}...``), so the text handed to
them is bounded by a `RepairBudget` shared by all the calls of one reply: a reply cannot buy a minute
of CPU with a few megabytes of broken JSON; such arguments get an ``arguments_error`` instead.

The module also holds the one rule for "is this a code tool" (`is_code_tool`).
"""

from __future__ import annotations

import json
from typing import Any

import json5
from json_repair import repair_json

from qwenkit.types import ToolCall, ToolSpec

CODE_FENCE_LANGS = frozenset({"", "py", "python", "python3", "py3", "ipython"})
"""Fence languages whose body is taken as the ``code`` argument."""

JSON_FENCE_LANGS = frozenset({"json", "json5", "jsonc"})
"""Fence languages whose body is read as JSON."""

MAX_JSON5_CHARS = 8_000
"""Characters of one reply that may go to ``json5`` (about 10-90 microseconds per character)."""

MAX_REPAIR_CHARS = 4_000
"""Characters of one reply that may go to ``json_repair`` (quadratic on some inputs: 4,000 characters
of ``{a: b}`` take about half a second)."""

_JSON_START = tuple('{["-0123456789')
_MAX_UNCLOSED = 200
_FENCE_LANG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")
_BLANKS = " \t"


class RepairBudget:
    """How many more characters one reply may hand to the slow forgiving parsers.

    A format makes one per reply and passes it to every `parse_arguments` / `load_json` of that
    reply; without one, each call of those functions gets a fresh budget.
    """

    def __init__(self, json5_chars: int = MAX_JSON5_CHARS, repair_chars: int = MAX_REPAIR_CHARS) -> None:
        self.json5_left = json5_chars
        self.repair_left = repair_chars

    def take_json5(self, text: str) -> bool:
        """Spend ``len(text)`` on json5; False (nothing spent) when not enough is left."""
        if len(text) > self.json5_left:
            return False
        self.json5_left -= len(text)
        return True

    def take_repair(self, text: str) -> bool:
        """Spend ``len(text)`` on json_repair; False (nothing spent) when not enough is left."""
        if len(text) > self.repair_left:
            return False
        self.repair_left -= len(text)
        return True


def parse_arguments(text: str, budget: RepairBudget | None = None) -> tuple[dict[str, Any], str | None]:
    """Read the arguments a model wrote for one call.

    Args:
        text: The argument text as the model wrote it.
        budget: The reply's budget for slow repairs (a fresh one when ``None``).

    Returns:
        ``(arguments, None)`` when an object could be read (empty text gives ``{}``), else
        ``({}, reason)`` with a short reason the model can act on. Never raises.
    """
    try:
        return _parse_arguments(text, budget or RepairBudget())
    except Exception as exc:  # last resort: a parser bug must not crash the loop
        return {}, f"could not read the arguments ({type(exc).__name__})"


def load_json(text: str, budget: RepairBudget | None = None) -> tuple[Any, str | None]:
    """Read one JSON value forgivingly (json, json5, a value with stray text after it, json_repair).

    Args:
        text: Text that should hold one JSON value.
        budget: The reply's budget for slow repairs (a fresh one when ``None``).

    Returns:
        ``(value, None)`` on success, else ``(None, reason)``. Never raises.
    """
    try:
        return _load_json(text.strip(), budget or RepairBudget())
    except Exception as exc:  # RecursionError on absurd nesting, a bug in a repair library, ...
        return None, f"could not read JSON ({type(exc).__name__})"


def arguments_text(call: ToolCall) -> str:
    """Return the arguments of ``call`` as the model should see them again in its own past turn.

    The raw text is kept when it is exactly what was read: a JSON object, a fenced code block (a code
    tool's argument, as Qwen-Agent writes it back), or text that could not be read (the model must see
    its mistake). Arguments that were repaired, or followed by stray text (a comment, "I will wait"),
    are written as the cleaned JSON, so the model's next prompt does not teach it the noise. Calls
    built elsewhere (no raw text) are written as JSON.
    """
    raw = call.raw_arguments.strip()
    if not raw:
        return json.dumps(call.arguments, ensure_ascii=False)
    if call.arguments_error is not None or raw.startswith("```"):
        return raw
    try:
        exact = isinstance(json.loads(raw), dict)
    except ValueError:
        exact = False
    return raw if exact else json.dumps(call.arguments, ensure_ascii=False)


def call_json(value: Any, markers: tuple[str, ...]) -> str:
    """Write ``value`` as one line of JSON in which none of ``markers`` appears.

    Used to write calls that a parser must read back exactly: the first character of each marker
    found in the text is written as a ``\\u`` escape (markers start with ``<`` or ``✿``, characters
    that only ever appear inside JSON strings, where an escape means the same).
    """
    text = json.dumps(value, ensure_ascii=False)
    for marker in markers:
        if marker in text:
            text = text.replace(marker[0], f"\\u{ord(marker[0]):04x}")
    return text


def make_call(name: str, raw_arguments: str, budget: RepairBudget | None = None) -> ToolCall:
    """Build a `ToolCall` from a name and argument text as written by the model (fresh id)."""
    arguments, error = parse_arguments(raw_arguments, budget)
    return ToolCall(name=name.strip(), arguments=arguments, raw_arguments=raw_arguments.strip(), arguments_error=error)


def is_code_tool(spec: ToolSpec) -> bool:
    """Whether ``spec`` takes exactly one string argument named ``code`` (a code interpreter).

    Qwen-Agent asks for a fenced code block instead of JSON for its ``code_interpreter``; qwenkit
    decides by the shape of the parameters, not by the tool's name. This is the one place that rule
    is written.
    """
    props = spec.parameters.get("properties")
    if not isinstance(props, dict) or list(props) != ["code"]:
        return False
    code = props["code"]
    return isinstance(code, dict) and code.get("type", "string") == "string"


def first_fence(text: str) -> tuple[str, str] | None:
    """Find the first markdown fence in ``text``: ``(language, body)``, or ``None`` without one.

    The body runs to the next ````` (blanks and one newline before it dropped) or to the end of the
    text when the fence is not closed. One pass with ``str.find``: a regular expression with a lazy
    body and blank runs is quadratic on ````` followed by megabytes of blanks.
    """
    at = text.find("```")
    if at < 0:
        return None
    i, n = at + 3, len(text)
    while i < n and text[i] in _BLANKS:
        i += 1
    lang_start = i
    while i < n and text[i] in _FENCE_LANG_CHARS:
        i += 1
    lang = text[lang_start:i]
    while i < n and text[i] in _BLANKS:
        i += 1
    if i < n and text[i] == "\n":
        i += 1
    close = text.find("```", i)
    if close < 0:
        return lang, text[i:]
    end = close
    while end > i and text[end - 1] in _BLANKS:
        end -= 1
    if end > i and text[end - 1] == "\n":
        end -= 1
    return lang, text[i:end]


# --------------------------------------------------------------------------------------- internals


def _parse_arguments(text: str, budget: RepairBudget) -> tuple[dict[str, Any], str | None]:
    t = text.strip()
    if not t:
        return {}, None
    if t.startswith("```") or (not t.startswith(("{", "[")) and "```" in t):
        fence = first_fence(t)
        if fence is not None:
            lang, body = fence[0].lower(), fence[1]
            if lang in JSON_FENCE_LANGS:
                return _as_object(*_load_json(body.strip(), budget))
            if lang == "" and body.lstrip().startswith("{"):
                value, error = _load_strict(body.strip(), budget)
                if error is None and isinstance(value, dict):
                    return _as_object(value, None)
            if lang in CODE_FENCE_LANGS:
                return {"code": body}, None
            return {}, f"a ```{lang[:40]} block is not a JSON object"
    return _as_object(*_load_json(t, budget))


def _as_object(value: Any, error: str | None) -> tuple[dict[str, Any], str | None]:
    if error is not None:
        return {}, error
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}, None
    return {}, f"expected a JSON object, got {_kind(value)}"


def _load_strict(t: str, budget: RepairBudget) -> tuple[Any, str | None]:
    try:
        return json.loads(t), None
    except (ValueError, RecursionError) as exc:
        first = exc
    if not budget.take_json5(t):
        return None, _too_long(first, t)
    try:
        return json5.loads(t), None
    except Exception:
        return None, _describe(first, t)


_UNCLOSED_TRIPLE = 'a string opened with """ is never closed (the reply may have been cut off)'


def _triple_quoted_as_json(t: str) -> str | None:
    """``t`` with each Python triple-quoted string written as a JSON string; ``None`` without one.

    Qwen2.5-Coder writes a code argument between three double quotes on each side, as Python would. The body
    is taken as written (no escapes interpreted), as code is meant. One pass with ``str.find``: linear.

    Raises:
        ValueError: A triple-quoted string is opened and never closed (`_UNCLOSED_TRIPLE`).
    """
    if '"""' not in t:
        return None
    out: list[str] = []
    i = 0
    while (start := t.find('"""', i)) >= 0:
        end = t.find('"""', start + 3)
        if end < 0:
            raise ValueError(_UNCLOSED_TRIPLE)
        out += [t[i:start], json.dumps(t[start + 3:end], ensure_ascii=False)]
        i = end + 3
    out.append(t[i:])
    return "".join(out)


def _load_json(t: str, budget: RepairBudget) -> tuple[Any, str | None]:
    value, error = _load_strict(t, budget)
    if error is None or not t.startswith(("{", "[")):
        return value, error
    try:
        converted = _triple_quoted_as_json(t)
    except ValueError:
        # Repairs would close it as an empty string: a code argument would silently run nothing.
        return None, _UNCLOSED_TRIPLE
    if converted is not None:
        try:
            return json.loads(converted), None
        except (ValueError, RecursionError):
            t = converted  # the repairs below work on JSON strings, not on Python's quotes
    try:  # a whole value followed by a comment or a hallucinated line
        return json.JSONDecoder().raw_decode(t)[0], None
    except (ValueError, RecursionError):
        pass
    unclosed = t.count("{") + t.count("[") - t.count("}") - t.count("]")
    if unclosed > _MAX_UNCLOSED:  # json_repair is quadratic in the nesting it must close
        return None, error
    if not budget.take_repair(t):
        return None, error if _TOO_LONG_TAIL in error else f"{error}{_TOO_LONG_TAIL} ({len(t)} characters)"
    try:
        repaired = repair_json(t, return_objects=True, skip_json_loads=True)
    except Exception:
        return None, error
    if isinstance(repaired, dict | list):
        return repaired, None
    return None, error


_TOO_LONG_TAIL = "; too long to repair, write strict JSON"


def _too_long(exc: BaseException, t: str) -> str:
    if not t.startswith(("{", "[")):
        return _describe(exc, t)
    return f"{_describe(exc, t)}{_TOO_LONG_TAIL} ({len(t)} characters)"


def _describe(exc: BaseException, t: str) -> str:
    if not t.startswith(_JSON_START) and not t.startswith(("true", "false", "null", '"')):
        return "expected a JSON object, got plain text"
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    return str(exc)[:200] or type(exc).__name__


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
