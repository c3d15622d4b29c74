"""Helpers for the BFCL tests: the fetched bfcl-eval data, and a model replaying multi-turn trajectories."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from qwenkit.bench.bfcl.data import cache_dir
from qwenkit.bench.bfcl.gold import GOLD_ANSWER, gold_reply
from qwenkit.bench.bfcl.multiturn import MultiTurnEntry
from qwenkit.llm.base import ChatRequest
from qwenkit.testing import FunctionModel
from qwenkit.types import Completion, ToolCall, UserMessage

Steps = list[list[list[tuple[str, dict[str, Any]]]]]
"""Per turn, per step, the calls ``(name, arguments)``."""
ANSWER = GOLD_ANSWER


def full_data_dir() -> Path:
    """The fetched bfcl-eval 2026.3.23 data (``qwenkit bench fetch bfcl``): ``$QWENKIT_BFCL_FULL_DIR``, else
    the fetch cache. Tests that need it are skipped with this reason when it is missing."""
    env = os.environ.get("QWENKIT_BFCL_FULL_DIR")
    path = Path(env) if env else cache_dir()
    if not (path / "package" / "bfcl_eval" / "__init__.py").is_file():
        pytest.skip(f"no fetched bfcl-eval package at {path}: run 'qwenkit bench fetch bfcl' "
                    f"(or set QWENKIT_BFCL_FULL_DIR)")
    return path


def reply(fmt: str, calls: Sequence[tuple[str, dict[str, Any]]]) -> str | Completion:
    """A reply making ``calls`` (none: a short answer) in the syntax of ``fmt``; native calls as a `Completion`."""
    out = gold_reply(fmt, calls)
    if isinstance(out, str):
        return out
    return Completion(text="", finish_reason="tool_calls", tool_calls=tuple(
        ToolCall(name=n, arguments=a, raw_arguments=json.dumps(a, ensure_ascii=False)) for n, a in out))


def replies_for(fmt: str, steps: Steps) -> list[str | Completion]:
    """The replies a model gives over a whole entry: per turn, each step's calls, then an answer."""
    out: list[str | Completion] = []
    for turn in steps:
        out += [reply(fmt, step) for step in turn if step]
        out.append(reply(fmt, []))
    return out


class ReplayModel(FunctionModel):
    """Replays per-entry replies; an entry is recognised by its first question in the request.

    Entries whose first questions are equal must run in separate tasks (see `split_duplicates`).
    """

    def __init__(self, plans: dict[str, list[str | Completion]], name: str = "replay") -> None:
        self.plans = {k: list(v) for k, v in plans.items()}
        self.cursor = dict.fromkeys(plans, 0)
        super().__init__(self._answer, name=name)

    def _answer(self, request: ChatRequest) -> str | Completion:
        first = next((m.content for m in request.messages if isinstance(m, UserMessage)), "")
        text = first if isinstance(first, str) else str(first)
        # The longest first question found: one entry's question can be the start of another's.
        key = text if text in self.plans else max((k for k in self.plans if k in text), key=len, default=None)
        assert key is not None, f"no plan for {text[:200]!r}"
        i = self.cursor[key]
        self.cursor[key] = i + 1
        plan = self.plans[key]
        return plan[i] if i < len(plan) else ANSWER

    async def complete(self, request: ChatRequest) -> Completion:
        out = await super().complete(request)
        self.requests.clear()  # 800 long-context conversations: keep no history of requests
        return out


def first_question(entry: MultiTurnEntry) -> str:
    return entry.turns[0][-1]["content"]


def split_duplicates(entries: Sequence[MultiTurnEntry]) -> list[list[MultiTurnEntry]]:
    """Split entries into groups in which no two share a first question."""
    groups: list[list[MultiTurnEntry]] = []
    for entry in entries:
        q = first_question(entry)
        for group in groups:
            if all(first_question(e) != q for e in group):
                group.append(entry)
                break
        else:
            groups.append([entry])
    return groups


def replay_model(
    fmt: str, entries: Sequence[MultiTurnEntry], steps_of: Callable[[MultiTurnEntry], Steps],
) -> ReplayModel:
    return ReplayModel({first_question(e): replies_for(fmt, steps_of(e)) for e in entries})
