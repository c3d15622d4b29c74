"""BFCL's AST checker for Python function calls, rule for rule, with a reason on every verdict.

The rules (BFCL ``ast_checker.py``, Python language):

- simple: exactly one call, checked against the record's first function;
- multiple: exactly one call, checked against the function the answer names;
- parallel / parallel_multiple: as many calls as answers, each answer matched by some not yet matched call,
  in any order;
- irrelevance: passes when no call could be decoded;
- one call: the exact function name; every required parameter present; no parameter outside the schema or
  the answer; the value's Python type must be the declared one (``int`` is accepted for ``float``; a value
  of the answer's own type counts as a "variable" and is compared as it is); strings compared after
  removing spaces and ``, . / - _ * ^``, lower-cased, ``'`` read as ``"``; lists compared in order with
  their string items normalised; dicts key by key; everything else must equal one listed value; an answer
  parameter may be omitted only where ``""`` is listed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

OK: Final = "ok"
WRONG_FUNCTION: Final = "wrong_function"
MISSING_REQUIRED: Final = "missing_required"
MISSING_OPTIONAL: Final = "missing_optional"
UNEXPECTED_PARAM: Final = "unexpected_param"
TYPE_MISMATCH: Final = "type_mismatch"
VALUE_MISMATCH: Final = "value_mismatch"
WRONG_COUNT: Final = "wrong_count"
UNPARSABLE: Final = "unparsable"

REASONS: Final = (OK, WRONG_FUNCTION, MISSING_REQUIRED, MISSING_OPTIONAL, UNEXPECTED_PARAM, TYPE_MISMATCH,
                  VALUE_MISMATCH, WRONG_COUNT, UNPARSABLE)
"""Every reason a verdict can carry. ``missing_optional``: an answer parameter was omitted where the
answer does not allow omitting it (``""`` not listed)."""

JAVA_TYPES: Final[dict[str, type]] = {
    "byte": int, "short": int, "integer": int, "float": float, "double": float, "long": int, "boolean": bool,
    "char": str, "Array": list, "ArrayList": list, "Set": set, "HashMap": dict, "Hashtable": dict, "Queue": list,
    "Stack": list, "String": str, "any": str,
}
"""BFCL's ``JAVA_TYPE_CONVERSION``: the Python type a Java parameter's literal converts to."""
JS_TYPES: Final[dict[str, type]] = {
    "String": str, "integer": int, "float": float, "Bigint": int, "Boolean": bool, "dict": dict, "array": list,
    "any": str,
}
"""BFCL's ``JS_TYPE_CONVERSION``."""
_CONVERTED_NESTED = ("Array", "ArrayList", "array")
Converter = Callable[..., Any]
"""An official type converter: ``(value, expected_type[, nested_type]) -> converted value``."""

PY_TYPES: Final[dict[str, type]] = {
    "string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
    "dict": dict, "any": str,
}
_NESTED = ("array", "tuple")
_STANDARDIZE = re.compile(r"[ ,./\-_*^]")

Call = dict[str, dict[str, Any]]
"""A decoded call as BFCL writes it: ``{function_name: {param: value}}``."""


@dataclass(frozen=True)
class Verdict:
    """The checker's judgement of one record.

    Attributes:
        valid: Whether the output is correct.
        reason: One of `REASONS`.
        detail: A sentence saying what was wrong (empty when valid).
    """

    valid: bool
    reason: str
    detail: str = ""


_VALID = Verdict(True, OK)


def _fail(reason: str, detail: str) -> Verdict:
    return Verdict(False, reason, detail)


def standardize_string(text: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lower-case, ``'`` becomes ``"``."""
    return _STANDARDIZE.sub("", text).lower().replace("'", '"')


def _answer_type(options: Sequence[Any]) -> type | None:
    for option in options:
        if option != "":
            return type(option)
    return None


def _type_check(
    param: str, value: Any, options: Sequence[Any], type_desc: str, expected: type, nested: type | None,
) -> tuple[Verdict, bool]:
    """Return the verdict and whether the value is taken as a "variable" (the answer's own type)."""
    answer_type = _answer_type(options)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is None:
            return _VALID, is_variable
        for option in options:
            ok = True
            if type(option) is list:
                for item in value:
                    item_verdict, _ = _type_check(param, item, option, nested.__name__, nested, None)
                    if not item_verdict.valid:
                        ok = False
                        break
            if ok:
                return _VALID, is_variable
        return _fail(TYPE_MISMATCH, f"items of {param!r} are not all {nested.__name__}: {value!r}"), False
    if answer_type is not None and type(value) is answer_type:
        return _VALID, True
    return _fail(TYPE_MISMATCH, f"{param!r} should be {type_desc}, got {type(value).__name__}: {value!r}"), False


def _std(value: Any) -> Any:
    return standardize_string(value) if type(value) is str else value


def _string_check(param: str, value: str, options: Sequence[Any]) -> Verdict:
    allowed = [standardize_string(o) for o in options if type(o) is str]
    if standardize_string(value) not in allowed:
        return _fail(VALUE_MISMATCH, f"{param!r}={value!r}, expected one of {list(options)!r}")
    return _VALID


def _list_check(param: str, value: list[Any], options: Sequence[Any]) -> Verdict:
    got = [_std(v) for v in value]
    allowed = [[_std(v) for v in option] for option in options if isinstance(option, (list, str))]
    if got not in allowed:
        return _fail(VALUE_MISMATCH, f"{param!r}={value!r}, expected one of {list(options)!r}")
    return _VALID


def _dict_check(param: str, value: dict[str, Any], options: Sequence[Any]) -> Verdict:
    verdict = _fail(VALUE_MISMATCH, f"{param!r}={value!r} matches no listed dict")
    for option in options:
        if option == "" or not isinstance(option, dict):
            continue
        verdict = _VALID
        for key, v in value.items():
            if key not in option:
                verdict = _fail(VALUE_MISMATCH, f"{param!r} has unexpected key {key!r}")
                break
            if _std(v) not in [_std(o) for o in option[key]]:
                verdict = _fail(VALUE_MISMATCH, f"{param!r}[{key!r}]={v!r}, expected one of {option[key]!r}")
                break
        if verdict.valid:
            for key, allowed in option.items():
                if key not in value and "" not in allowed:
                    verdict = _fail(VALUE_MISMATCH, f"{param!r} lacks key {key!r}")
                    break
        if verdict.valid:
            return _VALID
    return verdict


def _list_dict_check(param: str, value: list[Any], options: Sequence[Any]) -> Verdict:
    verdict = _fail(VALUE_MISMATCH, f"{param!r}={value!r} matches no listed list of dicts")
    for option in options:
        if not isinstance(option, (list, str)) or len(value) != len(option):
            verdict = _fail(VALUE_MISMATCH, f"{param!r} has the wrong number of dicts")
            continue
        ok = True
        for got, want in zip(value, option, strict=True):
            if not isinstance(got, dict):
                return _fail(TYPE_MISMATCH, f"items of {param!r} should be dicts, got {got!r}")
            verdict = _dict_check(param, got, [want])
            if not verdict.valid:
                ok = False
                break
        if ok:
            return _VALID
    return verdict


def language_of(category: str) -> str:
    """The checker language of a category: ``java``, ``javascript`` or ``python``."""
    if category.endswith("_java"):
        return "java"
    if category.endswith("_javascript"):
        return "javascript"
    return "python"


def _convert(
    param: str, value: Any, type_desc: str, properties: dict[str, Any], language: str, convert: Converter | None,
) -> tuple[Verdict, Any, type, type | None]:
    """Java/JavaScript: the value must be a string of the language's literal; convert it as BFCL does."""
    table = JAVA_TYPES if language == "java" else JS_TYPES
    if type_desc not in table:
        return _fail(TYPE_MISMATCH, f"{param!r} has type {type_desc!r}, unknown to BFCL's {language} checker"), \
            value, str, None
    expected = table[type_desc]
    if type(value) is not str:
        return _fail(TYPE_MISMATCH, f"{param!r} should be a string of a {language} literal, got "
                                    f"{type(value).__name__}: {value!r}"), value, expected, None
    if convert is None:
        raise ValueError(f"checking {language} calls needs the official type converter")
    nested = None
    try:
        if type_desc in _CONVERTED_NESTED:
            nested_desc = (properties.get("items") or {}).get("type")
            nested = table.get(nested_desc) if isinstance(nested_desc, str) else None
            value = convert(value, type_desc, nested_desc)
        else:
            value = convert(value, type_desc)
    except Exception as exc:  # the official converter raises on some malformed literals: no match then
        return _fail(TYPE_MISMATCH, f"{param!r}={value!r} is not a {type_desc} literal ({type(exc).__name__})"), \
            value, expected, nested
    return _VALID, value, expected, nested


def check_call(
    function: dict[str, Any], call: Call, answer: Call, *, language: str = "python", convert: Converter | None = None,
) -> Verdict:
    """Check one decoded call against one function doc and one answer (BFCL's simple function checker).

    Args:
        function: The BFCL function doc the answer refers to.
        call: The model's call, ``{name: {param: value}}``.
        answer: The acceptable call, ``{name: {param: [acceptable values]}}``.
        language: ``python``, ``java`` or ``javascript`` (Java/JavaScript values are strings of the
            language's literals, converted by ``convert`` before the Python rules apply).
        convert: BFCL's ``java_type_converter`` / ``js_type_converter`` for that language.
    """
    answer_params = next(iter(answer.values()))
    name = function["name"]
    if name not in call:
        got = next(iter(call), "")
        return _fail(WRONG_FUNCTION, f"expected a call of {name!r}, got {got!r}")
    params = call[name]
    properties: dict[str, Any] = function["parameters"].get("properties", {})
    for required in function["parameters"].get("required", []):
        if required not in params:
            return _fail(MISSING_REQUIRED, f"{name}: required parameter {required!r} is missing")
    for param, raw in params.items():
        if param not in properties or param not in answer_params:
            return _fail(UNEXPECTED_PARAM, f"{name}: unexpected parameter {param!r}")
        options = answer_params[param]
        type_desc = properties[param].get("type", "any")
        value: Any = raw
        if language != "python":
            converted, value, expected, nested = _convert(param, raw, type_desc, properties[param], language, convert)
            if not converted.valid:
                return Verdict(False, converted.reason, f"{name}: {converted.detail}")
        else:
            expected = PY_TYPES.get(type_desc, str)
            nested = None
            if type_desc in _NESTED:
                item_type = (properties[param].get("items") or {}).get("type")
                nested = PY_TYPES.get(item_type) if item_type else None
        if type_desc == "tuple" and type(value) is tuple:
            value = list(value)
        if language == "python" and type_desc == "float" and type(value) is int:
            value = float(value)
        verdict, is_variable = _type_check(param, value, options, type_desc, expected, nested)
        if not verdict.valid:
            return Verdict(False, verdict.reason, f"{name}: {verdict.detail}")
        if not is_variable:
            special = None
            if expected is dict:
                special = _dict_check(param, value, options)
            elif expected is list and nested is dict:
                special = _list_dict_check(param, value, options)
            elif expected is str:
                special = _string_check(param, value, options)
            elif expected is list:
                special = _list_check(param, value, options)
            if special is not None:
                if not special.valid:
                    return Verdict(False, special.reason, f"{name}: {special.detail}")
                continue
        if value not in options:
            return _fail(VALUE_MISMATCH, f"{name}: {param!r}={raw!r}, expected one of {options!r}")
    for param, options in answer_params.items():
        if param not in params and "" not in options:
            return _fail(MISSING_OPTIONAL, f"{name}: parameter {param!r} was omitted but the answer requires it")
    return _VALID


def _find_function(functions: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for f in functions:
        if f["name"] == name:
            return f
    raise ValueError(f"the answer names {name!r}, which is not among the record's functions")


def _parallel(
    functions: Sequence[dict[str, Any]], calls: Sequence[Call], answers: Sequence[Call], language: str,
    convert: Converter | None,
) -> Verdict:
    if len(calls) != len(answers):
        return _fail(WRONG_COUNT, f"expected {len(answers)} calls, got {len(calls)}")
    # Only the reason's label depends on this: unequal name multisets can never all match.
    want, got = Counter(next(iter(a)) for a in answers), Counter(next(iter(c), "") for c in calls)
    if want != got:
        return _fail(WRONG_FUNCTION, f"expected calls {dict(want)}, got {dict(got)}")
    matched: set[int] = set()
    for i, answer in enumerate(answers):
        expected = next(iter(answer))
        function = _find_function(functions, expected)
        misses: list[Verdict] = []
        for index, call in enumerate(calls):
            if index in matched:
                continue
            verdict = check_call(function, call, answer, language=language, convert=convert)
            if verdict.valid:
                matched.add(index)
                break
            misses.append(verdict)
        else:
            best = next((m for m in misses if m.reason != WRONG_FUNCTION), None) or misses[0]
            return _fail(best.reason, f"no call matches expected call #{i} ({expected}): {best.detail}")
    return _VALID


def check(
    category: str,
    functions: Sequence[dict[str, Any]],
    calls: Sequence[Call],
    answers: Sequence[Call] | None,
    *,
    undecodable: str | None = None,
    convert: Converter | None = None,
) -> Verdict:
    """Judge a model's decoded calls for one BFCL record.

    Args:
        category: BFCL category (``simple_python``, ``multiple``, ``parallel``, ``parallel_multiple``,
            ``irrelevance``).
        functions: The record's function docs.
        calls: The calls the model made, in order, ``[{name: {param: value}}]``.
        answers: The record's ground truth (``None`` for irrelevance).
        undecodable: Why the output could not be decoded as calls (a call with unreadable arguments),
            if it could not. As in BFCL, an undecodable output is no call: a failure where calls are
            expected, a pass for irrelevance.
        convert: The official type converter, for ``simple_java`` and ``simple_javascript``.
    """
    if "irrelevance" in category:
        if undecodable is None and calls:
            names = ", ".join(next(iter(c)) for c in calls)
            return _fail(WRONG_COUNT, f"expected no call, got {len(calls)} ({names})")
        return _VALID
    if "relevance" in category:  # BFCL: valid when at least one call could be decoded, whatever it is
        if undecodable is None and calls:
            return _VALID
        return _fail(UNPARSABLE if undecodable else WRONG_COUNT, undecodable or "expected at least one call, got none")
    language = language_of(category)
    if undecodable is not None:
        return _fail(UNPARSABLE, undecodable)
    if answers is None:
        raise ValueError(f"category {category!r} needs answers")
    if "parallel" in category:
        return _parallel(functions, calls, answers, language, convert)
    if len(calls) != len(answers) or ("multiple" not in category and len(calls) != 1):
        return _fail(WRONG_COUNT, f"expected {len(answers)} call, got {len(calls)}")
    if "multiple" in category:
        return check_call(_find_function(functions, next(iter(answers[0]))), calls[0], answers[0],
                          language=language, convert=convert)
    return check_call(functions[0], calls[0], answers[0], language=language, convert=convert)
