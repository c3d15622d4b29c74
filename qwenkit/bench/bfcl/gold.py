"""One concrete correct call per BFCL answer: the first acceptable value of each parameter.

Used to derive reference ReAct replies for the tool-use metrics, and by tests (a model that answers
with the gold calls must score 100%).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qwenkit.bench.bfcl.data import BfclItem


def _first(options: list[Any]) -> tuple[bool, Any]:
    """Return (present, value): the first option that is not ``""``, or absent when only ``""`` is listed."""
    for option in options:
        if option != "":
            return True, option
    return False, None


def _resolve_dict(option: dict[str, list[Any]]) -> dict[str, Any]:
    out = {}
    for key, options in option.items():
        present, value = _first(options)
        if present:
            out[key] = value
    return out


def _resolve(value: Any, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind in ("dict", "HashMap") and isinstance(value, dict):
        return _resolve_dict(value)
    if kind in ("array", "tuple") and (schema.get("items") or {}).get("type") == "dict" and isinstance(value, list):
        return [_resolve_dict(v) if isinstance(v, dict) else v for v in value]
    return value


def gold_arguments(function: dict[str, Any] | None, params: dict[str, list[Any]]) -> dict[str, Any]:
    """Arguments of one gold call: first acceptable value per parameter.

    Omitted: parameters whose only option is ``""``, and optional ones (``""`` listed) that the function's
    schema lacks (a few BFCL answers list such a parameter; passing it would be unexpected).
    """
    properties = ((function or {}).get("parameters") or {}).get("properties", {})
    args = {}
    for name, options in params.items():
        if properties and name not in properties and "" in options:
            continue
        present, value = _first(options)
        if present:
            args[name] = _resolve(value, properties.get(name, {}))
    return args


def gold_calls(item: BfclItem) -> list[tuple[str, dict[str, Any]]]:
    """The gold calls of a record, in answer order, as ``(name, arguments)``.

    Empty for the irrelevance categories; for live_relevance (any call is right, there is no answer) a call
    of the first function with its required parameters set to ``""``. Java and JavaScript arguments are
    written as strings of the language's literals, as BFCL expects them.
    """
    if item.category == "live_relevance":
        first = item.functions[0]
        required = (first.get("parameters") or {}).get("required", [])
        return [(first["name"], {p: "" for p in required})]
    by_name = {f["name"]: f for f in item.functions}
    calls = []
    for answer in item.ground_truth or []:
        name, params = next(iter(answer.items()))
        calls.append((name, literal_arguments(item, name, gold_arguments(by_name.get(name), params))))
    return calls


def _java_item(value: Any) -> str:
    """A Java literal for an element of a collection (read back by BFCL's ``parse_java_value``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


def _js_item(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_js_item(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_js_item(v)}" for k, v in value.items()) + "}"
    return repr(value)


def literal(value: Any, schema: dict[str, Any], language: str) -> Any:
    """``value`` written as the string of a Java or JavaScript literal that BFCL's converters read back.

    Python values are returned unchanged; a string where another type is declared (BFCL's "variable") is
    kept as it is.
    """
    kind = schema.get("type")
    if language == "python" or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if language == "java":
        if kind == "long":
            return f"{value}L"
        if kind == "float":
            return f"{value}f"
        if kind in ("Array", "ArrayList") and isinstance(value, list):
            nested = (schema.get("items") or {}).get("type", "String")
            if kind == "Array":
                items = ", ".join(v if isinstance(v, str) else str(literal(v, {"type": nested}, "java"))
                                  for v in value)
                return f"new {nested}[] {{{items}}}"
            items = ", ".join(_java_item(v) if isinstance(v, str) or nested in ("String", "any", "char")
                              else str(literal(v, {"type": nested}, "java")) for v in value)
            return f"new ArrayList<>(Arrays.asList({items}))"
        if kind == "HashMap" and isinstance(value, dict):
            puts = " ".join(f'put("{k}", {_java_item(v)});' for k, v in value.items())
            return f"new HashMap<String, String>() {{{{ {puts} }}}}"
        return str(value)
    if kind == "Bigint":
        return f"{value}n"
    return _js_item(value)


def literal_arguments(item: BfclItem, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A gold call's arguments written as the record's language expects (Java/JavaScript literals)."""
    from qwenkit.bench.bfcl.checker import language_of

    language = language_of(item.category)
    if language == "python":
        return arguments
    function = next((f for f in item.functions if f["name"] == name), {})
    properties = (function.get("parameters") or {}).get("properties", {})
    return {k: literal(v, properties.get(k, {}), language) for k, v in arguments.items()}


GOLD_ANSWER = "Done."
"""The answer of a replaying model in a step without calls."""


def gold_reply(fmt: str, calls: Sequence[tuple[str, dict[str, Any]]]) -> str | list[tuple[str, dict[str, Any]]]:
    """The reply making ``calls`` (none: the short answer `GOLD_ANSWER`) in the syntax of ``fmt``.

    For the replaying models of the tests and benchmarks; ``native`` calls are returned as they are.
    """
    if not calls:
        return f"Thought: done.\nFinal Answer: {GOLD_ANSWER}" if fmt == "react" else GOLD_ANSWER
    dumps = [json.dumps(a, ensure_ascii=False) for _, a in calls]
    if fmt == "nous":
        return "\n".join("<tool_call>\n" + json.dumps({"name": n, "arguments": a}, ensure_ascii=False)
                         + "\n</tool_call>" for n, a in calls)
    if fmt == "qwen":
        return "".join(f"✿FUNCTION✿: {n}\n✿ARGS✿: {d}\n" for (n, _), d in zip(calls, dumps, strict=True))
    if fmt == "react":
        return "Thought: call.\n" + "".join(
            f"Action: {n}\nAction Input: {d}\n" for (n, _), d in zip(calls, dumps, strict=True))
    if fmt == "native":
        return list(calls)
    if fmt == "pythonic":
        from qwenkit.llm.formats.pythonic import write_calls

        return write_calls(calls)
    raise ValueError(f"unknown format {fmt!r}")
