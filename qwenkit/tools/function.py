"""`@tool`: turn a typed, documented Python function (sync or async) into a `Tool`."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, overload

from pydantic import BaseModel

from qwenkit.tools.base import ApprovalRule, Tool, ToolContext, ToolOutput
from qwenkit.tools.schema import function_schema
from qwenkit.types import ToolSpec


def to_observation(value: Any) -> ToolOutput | str:
    """Turn a function's return value into text the model can read."""
    if isinstance(value, ToolOutput | str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


class FunctionTool(Tool):
    """A tool backed by a plain function; its schema comes from the signature and docstring."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        human_name: str | None = None,
        timeout: float | None = None,
        sequential: bool = False,
        requires_approval: bool | ApprovalRule = False,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"tool {fn.__name__!r}: timeout must be a positive number of seconds, not {timeout!r}")
        schema = function_schema(fn)
        self.sequential = sequential
        self.requires_approval = requires_approval
        self.fn = fn
        self.args_model = schema.args_model
        self.timeout = timeout
        self._context_param = schema.context_param
        self.is_async = inspect.iscoroutinefunction(fn)
        self.spec = ToolSpec(
            name=name or fn.__name__,
            description=description if description is not None else schema.description,
            parameters=schema.parameters,
            human_name=human_name or "",
        )

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput | str:
        kwargs = dict(args)
        if self._context_param:
            kwargs[self._context_param] = ctx
        if self.is_async:
            value = await self.fn(**kwargs)
        else:
            # Sync tools run in a worker thread so parallel calls really overlap and the loop stays live.
            value = await asyncio.to_thread(functools.partial(self.fn, **kwargs))
        return to_observation(value)


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    human_name: str | None = None,
    timeout: float | None = None,
    sequential: bool = False,
    requires_approval: bool | ApprovalRule = False,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    human_name: str | None = None,
    timeout: float | None = None,
    sequential: bool = False,
    requires_approval: bool | ApprovalRule = False,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a `FunctionTool` from a function, as ``@tool`` or ``@tool(name=..., timeout=...)``.

    Args:
        fn: The function (when used without parentheses).
        name: Tool name; defaults to the function name. Dotted names such as ``math.factorial`` work.
        description: Overrides the docstring description.
        human_name: Display name for Qwen's ReAct template.
        timeout: Seconds before a call is stopped and reported to the model as timed out.
        sequential: Calls of this tool share order-dependent state: several calls in one model turn run
            one after another, in the order written, instead of concurrently.
        requires_approval: A person must approve each call before it runs (``True``, or a function of the
            arguments and the context deciding per call); see `Agent.resume`.

    Returns:
        The tool, or a decorator that makes one.
    """

    def make(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description, human_name=human_name, timeout=timeout,
                            sequential=sequential, requires_approval=requires_approval)

    return make(fn) if fn is not None else make
