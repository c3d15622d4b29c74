"""The built-in tools the CLI can enable by name, each made fresh for the agent that asks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType

from qwenkit.errors import ConfigError
from qwenkit.tools.base import Tool


def _calculator(kernels: str) -> Tool:
    from qwenkit.tools.builtin.calculator import calculator_tool

    return calculator_tool()


def _code_interpreter(kernels: str) -> Tool:
    from qwenkit.tools.builtin.code_interpreter import CodeInterpreter

    # Keep each conversation's figures after the run, where the person at the terminal can open them.
    return CodeInterpreter(workdir_root=Path(os.environ.get("QWENKIT_OUTPUTS", "qwenkit-outputs")).resolve(),
                           kernels=kernels)


BUILTIN_TOOLS: MappingProxyType[str, Callable[[str], Tool]] = MappingProxyType({
    "calculator": _calculator,
    "code_interpreter": _code_interpreter,
})
"""Read-only map from tool name to a factory; factories import lazily so the CLI starts fast."""


def make_tools(names: Iterable[str], *, kernels: str = "local") -> list[Tool]:
    """Make one new instance of each named built-in tool.

    Args:
        names: Built-in tool names; repeats are made once.
        kernels: Where the code interpreter's kernels run: ``local`` or ``gateway:URL``.

    Raises:
        ConfigError: A name is not a built-in tool.
    """
    tools = []
    for name in dict.fromkeys(names):
        factory = BUILTIN_TOOLS.get(name)
        if factory is None:
            raise ConfigError(f"unknown tool {name!r}; built-in tools: {', '.join(sorted(BUILTIN_TOOLS))}")
        tools.append(factory(kernels))
    return tools
