"""One concrete correct call per BFCL answer: the first acceptable value of each parameter.

Used to derive reference ReAct replies for the tool-use metrics, and by tests (a model that answers
with the gold calls must score 100%).
"""

from __future__ import annotations

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
    if kind == "dict" and isinstance(value, dict):
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
    """The gold calls of a record, in answer order, as ``(name, arguments)``; empty for irrelevance."""
    by_name = {f["name"]: f for f in item.functions}
    calls = []
    for answer in item.ground_truth or []:
        name, params = next(iter(answer.items()))
        calls.append((name, gold_arguments(by_name.get(name), params)))
    return calls
