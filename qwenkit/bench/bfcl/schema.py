"""Convert BFCL function docs to qwenkit `ToolSpec`s with JSON-schema parameters.

BFCL writes Python-flavoured types: ``dict`` becomes ``object``, ``float`` becomes ``number``, ``tuple``
becomes ``array``, and ``any`` drops the ``type`` key (any JSON value). Function names are kept exactly,
dots included (``math.factorial``): the checker compares names verbatim.
"""

from __future__ import annotations

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
