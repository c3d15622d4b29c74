"""Build a pydantic arguments model and a JSON schema from a function's signature and docstring."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_origin, get_type_hints

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, create_model

from qwenkit.tools.base import ToolContext


class FunctionSchema(BaseModel):
    """What `function_schema` learns from a function.

    Attributes:
        description: The docstring's summary and body (without the Args section).
        args_model: Pydantic model of the parameters, validated before the call.
        parameters: JSON schema of the arguments object, cleaned of pydantic's titles.
        context_param: Name of a parameter annotated `ToolContext`, passed by the registry, if any.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    description: str
    args_model: type[BaseModel]
    parameters: dict[str, Any]
    context_param: str | None = None


def _strip_titles(node: Any) -> Any:
    """Drop pydantic's auto-generated ``title`` keys, which only add prompt tokens."""
    if isinstance(node, dict):
        return {
            k: _strip_titles(v)
            for k, v in node.items()
            if not (k == "title" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def function_schema(fn: Callable[..., Any], *, model_name: str | None = None) -> FunctionSchema:
    """Read a function's parameters, types, defaults and Google-style docstring.

    Args:
        fn: The function. Every parameter except a `ToolContext` one needs a type hint.
        model_name: Name of the generated arguments model (defaults to the function name).

    Returns:
        The description, the arguments model and its JSON schema.

    Raises:
        TypeError: A parameter has no type hint, or is ``*args``/``**kwargs``.
    """
    doc = docstring_parser.parse(inspect.getdoc(fn) or "")
    param_docs = {p.arg_name: (p.description or "") for p in doc.params}
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"tool {fn.__name__!r}: *args/**kwargs cannot be described to a model")
        hint = hints.get(name)
        if hint is ToolContext or get_origin(hint) is ToolContext:  # ctx: ToolContext[MyDeps] too
            context_param = name
            continue
        if name not in hints:
            raise TypeError(f"tool {fn.__name__!r}: parameter {name!r} needs a type hint")
        default = ... if param.default is inspect.Parameter.empty else param.default
        # Only set a description the docstring has: None would erase one from Annotated[..., Field(...)].
        doc_text = param_docs.get(name)
        fields[name] = (hints[name], Field(default, description=doc_text) if doc_text else default)
    args_model = create_model(  # type: ignore[call-overload]
        model_name or fn.__name__, __config__=ConfigDict(extra="forbid"), **fields
    )
    description = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p)
    schema = _strip_titles(args_model.model_json_schema())
    schema.pop("additionalProperties", None)
    return FunctionSchema(
        description=description,
        args_model=args_model,
        parameters=schema,
        context_param=context_param,
    )
