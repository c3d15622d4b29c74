"""``--approve``: how the CLI answers a run that waits for a person's approval (ask on the terminal, or not)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from qwenkit.errors import ConfigError
from qwenkit.types import ToolCall

APPROVE_MODES = ("ask", "all", "none")


def decide(calls: list[ToolCall], mode: str, ask: Callable[[str], str] | None = None) -> dict[str, bool | str]:
    """Decisions for the calls a run waits on.

    Args:
        calls: The pending calls.
        mode: ``ask`` (prompt y/n for each on the terminal), ``all`` (approve all) or ``none`` (deny all).
        ask: Reads the answer to a prompt (``input`` by default; tests pass their own).

    Raises:
        ConfigError: ``ask`` without a terminal to ask on.
    """
    if mode == "all":
        return {c.id: True for c in calls}
    if mode == "none":
        return {c.id: "denied by --approve none" for c in calls}
    if ask is None:
        if not sys.stdin.isatty():
            raise ConfigError("a tool call needs approval but standard input is not a terminal to ask on; "
                              "use --approve all or --approve none")
        ask = input
    decisions: dict[str, bool | str] = {}
    for call in calls:
        args = json.dumps(call.arguments, ensure_ascii=False)
        if len(args) > 2000:
            args = args[:2000] + "…"
        while True:
            try:
                answer = ask(f"approve {call.name}({args})? [y/n] ").strip().lower()
            except EOFError:
                answer = "n"
            if answer in ("y", "yes"):
                decisions[call.id] = True
                break
            if answer in ("n", "no", ""):
                decisions[call.id] = "denied by the user at the terminal"
                break
    return decisions
