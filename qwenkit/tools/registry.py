"""`ToolRegistry`: the tools one agent may call, and the safe dispatch of a `ToolCall` to one of them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from qwenkit._untrusted import clean_text
from qwenkit.errors import ConfigError, SandboxUnavailable
from qwenkit.tools.base import ModelRetry, Tool, ToolContext, ToolOutput, ToolResult
from qwenkit.tools.function import FunctionTool
from qwenkit.types import ToolCall, ToolSpec

SAFETY_MARGIN_S = 10.0
"""How long after its own timeout a tool that stops itself (`Tool.handles_timeout`) is cancelled anyway."""

OPERATOR_ERRORS: tuple[type[Exception], ...] = (SandboxUnavailable, ConfigError)
"""Errors from a tool that end the run instead of reaching the model: the machine or the setup is wrong."""


def _validation_text(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _single_string_parameter(spec: ToolSpec) -> str | None:
    """The name of a tool's only parameter when that parameter is a required string, else ``None``."""
    props = spec.parameters.get("properties") or {}
    if len(props) != 1:
        return None
    (name, schema), = props.items()
    required = spec.parameters.get("required") or []
    return name if isinstance(schema, dict) and schema.get("type") == "string" and name in required else None


class ToolRegistry:
    """The tools one agent may call. An instance, never module-level state.

    Dispatch never raises for anything the model did: an unknown name, unparsable or invalid
    arguments, a tool exception or a timeout each come back as a `ToolResult` with ``ok=False`` and a
    message the model can act on. Only operator errors (`OPERATOR_ERRORS`: the sandbox cannot run here,
    a tool is misconfigured) propagate, because no observation can make the model fix them.
    """

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, tool: Tool) -> None:
        """Register ``tool``. Raises ``ValueError`` if its name is taken."""
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        """Return the tool called ``name`` (surrounding spaces and quotes ignored), or ``None``."""
        return self._tools.get(name) or self._tools.get(name.strip().strip("\"'`"))

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[ToolSpec]:
        """Return the specs of all tools in registration order."""
        return [t.spec for t in self._tools.values()]

    def _validate(self, tool: Tool, call: ToolCall) -> dict[str, Any]:
        if tool.args_model is None:
            return dict(call.arguments)
        model: BaseModel = tool.args_model.model_validate(call.arguments)
        # Keep only fields the caller set or that have defaults; pass python values, not JSON.
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def call(self, call: ToolCall, ctx: ToolContext, *, timeout: float | None = None) -> ToolResult:
        """Validate ``call`` and run its tool; every failure becomes an observation.

        Args:
            call: The parsed call.
            ctx: The run's context for the tool.
            timeout: Seconds allowed; defaults to the tool's own ``timeout``.

        Returns:
            The result; ``ok`` is False when the call failed for any reason.
        """
        start = time.perf_counter()

        def fail(kind: str, text: str) -> ToolResult:
            return ToolResult(
                call_id=call.id, name=clean_text(call.name)[0], content=clean_text(text)[0], ok=False, error_type=kind,
                duration_s=time.perf_counter() - start,
            )

        tool = self.get(call.name)
        if tool is None:
            avail = ", ".join(self._tools) or "(none)"
            return fail("UnknownTool", f"Error: there is no tool named {call.name!r}. Available tools: {avail}.")
        if call.arguments_error is not None and (only := _single_string_parameter(tool.spec)) and call.raw_arguments:
            # A one-string tool (code_interpreter) given raw text instead of JSON: the text is the argument.
            call = call.model_copy(update={"arguments": {only: call.raw_arguments.strip()}, "arguments_error": None})
        if call.arguments_error is not None:
            return fail(
                "InvalidArguments",
                f"Error: the arguments for {tool.name} are not valid JSON ({call.arguments_error}). "
                "Write them as one JSON object.",
            )
        try:
            args = self._validate(tool, call)
        except ValidationError as err:
            return fail("InvalidArguments", f"Error: invalid arguments for {tool.name}: {_validation_text(err)}")
        except Exception as exc:  # a validator that raised something pydantic does not wrap
            return fail("InvalidArguments", f"Error: invalid arguments for {tool.name}: {type(exc).__name__}: {exc}")
        limit = timeout if timeout is not None else tool.timeout
        if tool.handles_timeout:
            # The tool stops itself cleanly at ctx.timeout (the interpreter interrupts its cell); the registry
            # only keeps a later safety deadline in case that stop hangs.
            ctx = dataclasses.replace(ctx, timeout=limit)
            deadline = asyncio.timeout(None if limit is None else limit + max(SAFETY_MARGIN_S, tool.timeout_margin))
        else:
            ctx = dataclasses.replace(ctx, timeout=limit)
            deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                out = await tool.run(args, ctx)
        except TimeoutError as exc:
            if not deadline.expired():  # the tool's own timeout (an HTTP call inside it, say)
                return fail("TimeoutError", f"Error: TimeoutError: {exc}")
            if tool.handles_timeout:
                return fail("Timeout", f"Error: {tool.name} did not stop within {limit:g} s, even when asked to.")
            if isinstance(tool, FunctionTool) and not tool.is_async:
                # A sync tool's thread cannot be killed: say so rather than claim it was stopped.
                return fail("Timeout", f"Error: {tool.name} did not finish within {limit:g} s; its result was "
                                       "abandoned.")
            return fail("Timeout", f"Error: {tool.name} did not finish within {limit:g} s and was cancelled.")
        except ModelRetry as retry:
            return fail("ModelRetry", retry.message)
        except asyncio.CancelledError:
            raise
        except OPERATOR_ERRORS:
            raise  # the machine or the configuration is wrong: the model cannot fix that, the run ends
        except Exception as exc:  # a tool's bug is the model's observation, not the loop's crash
            return fail(type(exc).__name__, f"Error: {type(exc).__name__}: {exc}")
        if not isinstance(out, ToolOutput):  # a class tool that broke its contract still gives text
            out = ToolOutput(text=out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, default=str))
        return ToolResult(
            call_id=call.id, name=tool.name, content=clean_text(out.text)[0], ok=not out.is_error,
            error_type="ToolError" if out.is_error else None, images=out.images,
            duration_s=time.perf_counter() - start, usage=out.usage,
        )

    async def close_conversation(self, conversation_id: str) -> None:
        """Tell every tool that ``conversation_id`` ended, so it can release per-conversation state."""
        await asyncio.gather(*(t.close_conversation(conversation_id) for t in self._tools.values()))

    async def aclose(self) -> None:
        """Release everything every tool holds."""
        await asyncio.gather(*(t.aclose() for t in self._tools.values()))

    def close_now(self) -> bool:
        """Release what every tool holds without an event loop; whether anything was still held."""
        held = False
        for t in self._tools.values():
            try:
                held |= t.close_now()
            except Exception:  # a finaliser must release the other tools' resources too
                held = True
        return held
