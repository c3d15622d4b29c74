"""Convert BFCL function docs to qwenkit `ToolSpec`s with JSON-schema parameters.

BFCL writes Python-flavoured types: ``dict`` becomes ``object``, ``float`` becomes ``number``, ``tuple``
becomes ``array``, and ``any`` drops the ``type`` key (any JSON value). Function names are kept exactly,
dots included (``math.factorial``): the checker compares names verbatim.
"""

from __future__ import annotations

import json
from typing import Any

from qwenkit.types import ToolSpec

TYPE_MAP = {"dict": "object", "float": "number", "tuple": "array", "any": None}
_SCHEMA_KEYS = ("items", "additionalProperties")


def convert_schema(node: Any) -> Any:
    """Return a JSON-schema copy of a BFCL parameter schema (``node`` is not modified)."""
    if isinstance(node, list):
        return [convert_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            mapped = TYPE_MAP.get(value, value)
            if mapped is not None:
                out["type"] = mapped
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: convert_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_KEYS and isinstance(value, dict):
            out[key] = convert_schema(value)
        else:
            out[key] = value
    return out


def to_tool_spec(function: dict[str, Any]) -> ToolSpec:
    """Turn one BFCL function doc into a `ToolSpec` (name kept exact)."""
    params = convert_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return ToolSpec(name=function["name"], description=function.get("description", ""), parameters=params)


def to_tool_specs(functions: list[dict[str, Any]]) -> list[ToolSpec]:
    """Convert every function doc of a BFCL record."""
    return [to_tool_spec(f) for f in functions]


def _hint(category: str) -> str:
    if category.endswith("_java"):
        return " Note that the provided function is in Java 8 SDK syntax."
    if category.endswith("_javascript"):
        return " Note that the provided function is in JavaScript syntax."
    return " Note that the provided function is in Python 3 syntax."


def with_language_hints(functions: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
    """The function docs as BFCL shows them to the model (``utils._func_doc_language_specific_pre_processing``).

    Every description gets the language note; Java and JavaScript parameters become ``string`` parameters
    whose description names the language type (their values are written as literals). The checker keeps
    using the original docs. ``functions`` is not modified.
    """
    import copy

    out = copy.deepcopy(functions)
    java, js = category.endswith("_java"), category.endswith("_javascript")
    for item in out:
        item["description"] = item.get("description", "") + _hint(category)
        if not (java or js):
            continue
        lang = "Java" if java else "JavaScript"
        for value in ((item.get("parameters") or {}).get("properties") or {}).values():
            kind = value.get("type")
            if kind == "any":
                value["description"] = value.get("description", "") + \
                    f" This parameter can be of any type of {lang} object in string representation."
            else:
                value["description"] = value.get("description", "") + \
                    f" This is {lang} {kind} type parameter in string representation."
            if kind in (("ArrayList", "Array") if java else ("array",)):
                value["description"] += (f" The list elements are of type {(value.get('items') or {}).get('type')};"
                                         " they are not in string representation.")
                value.pop("items", None)
            if js and kind == "dict" and "properties" in value:
                value["description"] += (" The dictionary entries have the following schema; they are not in "
                                         f"string representation. {json.dumps(value['properties'])}")
                del value["properties"]
            value["type"] = "string"
    return out
