from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from qwenkit.tools import ModelRetry, ToolContext, ToolOutput, ToolRegistry, tool
from qwenkit.tools.base import Tool
from qwenkit.types import ToolCall, ToolSpec

CTX = ToolContext(conversation_id="c1", call_id="x")


@tool(name="math.factorial")
def factorial(n: int) -> int:
    """n!"""
    out = 1
    for i in range(2, n + 1):
        out *= i
    return out


@tool
async def echo(text: str, times: int = 1) -> str:
    """Repeat text."""
    return text * times


@tool
def boom(x: int) -> int:
    """Always fails."""
    raise ZeroDivisionError("division by zero")


@tool
def picky(x: int) -> int:
    """Asks the model to retry."""
    raise ModelRetry("x must be positive; try again with x > 0")


@tool(timeout=0.2)
async def slow(x: int) -> int:
    """Sleeps."""
    await asyncio.sleep(5)
    return x


class Out(BaseModel):
    total: int


@tool
def structured(a: int, b: int) -> Out:
    """Returns a model."""
    return Out(total=a + b)


def registry() -> ToolRegistry:
    return ToolRegistry([factorial, echo, boom, picky, slow, structured])


async def call(name: str, args: dict | None = None, **kw: object) -> object:
    return await registry().call(ToolCall(name=name, arguments=args or {}, **kw), CTX)  # type: ignore[arg-type]


async def test_sync_and_async_tools_run_with_validated_args() -> None:
    r = await call("math.factorial", {"n": "5"})  # lax validation converts "5"
    assert r.ok and r.content == "120" and r.name == "math.factorial"
    r = await call("echo", {"text": "ab", "times": 2})
    assert r.ok and r.content == "abab"
    r = await call("structured", {"a": 1, "b": 2})
    assert r.content == '{"total":3}'


async def test_unknown_tool_lists_available_ones() -> None:
    r = await call("math.fact", {"n": 1})
    assert not r.ok and r.error_type == "UnknownTool"
    assert "math.fact" in r.content and "math.factorial" in r.content


async def test_invalid_arguments_are_an_observation() -> None:
    r = await call("math.factorial", {"n": "five"})
    assert not r.ok and r.error_type == "InvalidArguments" and "n:" in r.content
    r = await call("math.factorial", {"n": 1, "extra": 2})
    assert not r.ok and "extra" in r.content
    r = await call("math.factorial", {})
    assert not r.ok and "Field required" in r.content


async def test_unparsable_arguments_are_an_observation() -> None:
    r = await call("echo", {}, raw_arguments="{text: ", arguments_error="unterminated object")
    assert not r.ok and r.error_type == "InvalidArguments" and "unterminated object" in r.content


async def test_exceptions_become_observations() -> None:
    r = await call("boom", {"x": 1})
    assert not r.ok and r.error_type == "ZeroDivisionError"
    assert r.content == "Error: ZeroDivisionError: division by zero"
    r = await call("picky", {"x": -1})
    assert not r.ok and r.error_type == "ModelRetry" and r.content == "x must be positive; try again with x > 0"


async def test_timeout_per_tool_and_per_call() -> None:
    start = time.perf_counter()
    r = await call("slow", {"x": 1})
    assert not r.ok and r.error_type == "Timeout" and "0.2 s" in r.content
    assert time.perf_counter() - start < 2
    r = await registry().call(ToolCall(name="echo", arguments={"text": "a"}), CTX, timeout=1)
    assert r.ok


async def test_class_based_tool_and_tool_output() -> None:
    class Images(Tool):
        spec = ToolSpec(name="img", description="makes an image")

        async def run(self, args: dict, ctx: ToolContext) -> ToolOutput:
            return ToolOutput(text=f"made for {ctx.conversation_id}", images=["/tmp/a.png"], is_error=False)

    r = await ToolRegistry([Images()]).call(ToolCall(name="img"), CTX)
    assert r.ok and r.images == ["/tmp/a.png"] and r.content == "made for c1"


def test_duplicate_names_rejected_and_lookup_forgiving() -> None:
    reg = registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.add(echo)
    assert reg.get(" `echo` ") is echo
    assert "math.factorial" in reg and len(reg) == 6


async def test_a_tools_own_timeout_error_is_an_observation_not_a_crash() -> None:
    @tool
    async def fetch(url: str) -> str:
        """Pretends an HTTP client inside the tool timed out."""
        raise TimeoutError("read timed out")

    r = await ToolRegistry([fetch]).call(ToolCall(name="fetch", arguments={"url": "x"}), CTX)
    assert not r.ok and r.error_type == "TimeoutError" and "read timed out" in r.content
    limited = ToolRegistry([fetch])
    r = await limited.call(ToolCall(name="fetch", arguments={"url": "x"}), CTX, timeout=5)
    assert r.error_type == "TimeoutError"  # not reported as our own 5 s limit


async def test_per_call_timeout_overrides_the_tools_own() -> None:
    r = await registry().call(ToolCall(name="slow", arguments={"x": 1}), CTX, timeout=0.05)
    assert r.error_type == "Timeout" and "0.05 s" in r.content and "cancelled" in r.content


async def test_a_sync_tool_past_its_timeout_is_reported_abandoned() -> None:
    @tool
    def sleepy(x: int) -> int:
        """Blocks its thread."""
        time.sleep(0.5)
        return x

    r = await ToolRegistry([sleepy]).call(ToolCall(name="sleepy", arguments={"x": 1}), CTX, timeout=0.05)
    assert r.error_type == "Timeout" and "abandoned" in r.content  # a thread cannot be stopped: say so


async def test_contract_breaking_tools_still_give_observations() -> None:
    from pydantic import field_validator

    class Args(BaseModel):
        items: list[int]

        @field_validator("items")
        @classmethod
        def first(cls, v: list[int]) -> list[int]:
            return [v[10]]  # IndexError escapes pydantic's wrapping

    class Raw(Tool):
        spec = ToolSpec(name="raw")
        args_model = Args

        async def run(self, args: dict, ctx: ToolContext) -> ToolOutput:
            return {"not": "a ToolOutput"}  # type: ignore[return-value]

    class Loose(Tool):
        spec = ToolSpec(name="loose")

        async def run(self, args: dict, ctx: ToolContext) -> ToolOutput:
            return {"n": 1}  # type: ignore[return-value]

    reg = ToolRegistry([Raw(), Loose()])
    r = await reg.call(ToolCall(name="raw", arguments={"items": [1]}), CTX)
    assert not r.ok and r.error_type == "InvalidArguments" and "IndexError" in r.content
    r = await reg.call(ToolCall(name="loose"), CTX)
    assert r.ok and r.content == '{"n": 1}'


async def test_raw_text_for_a_one_string_tool_is_its_argument() -> None:
    @tool
    def run_code(code: str) -> str:
        """Echo code."""
        return f"ran: {code}"

    raw = "print(2**100)"
    r = await ToolRegistry([run_code]).call(
        ToolCall(name="run_code", raw_arguments=raw, arguments_error="not JSON"), CTX)
    assert r.ok and r.content == "ran: print(2**100)"
    # a tool with other parameters still gets the JSON error
    r = await registry().call(ToolCall(name="echo", raw_arguments="hi", arguments_error="not JSON"), CTX)
    assert not r.ok and r.error_type == "InvalidArguments"
