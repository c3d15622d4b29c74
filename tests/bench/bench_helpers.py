"""Helpers for the benchmark tests: gold replies written in each prompt format's own syntax."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qwenkit.bench.bfcl.data import BfclItem
from qwenkit.bench.bfcl.gold import gold_calls
from qwenkit.bench.bfcl.task import BfclTask
from qwenkit.llm.base import ChatRequest
from qwenkit.testing import FunctionModel
from qwenkit.types import Completion, ToolCall

NO_CALL_TEXT = "None of the given functions can answer this question."


def reply_with_calls(fmt: str, calls: Sequence[tuple[str, dict[str, Any]]]) -> str | Completion:
    """A reply making ``calls`` (none: a plain answer) in the text syntax of ``fmt``, or native tool_calls."""
    dumps = [json.dumps(args, ensure_ascii=False) for _, args in calls]
    if not calls:
        return f"Thought: no tool fits.\nFinal Answer: {NO_CALL_TEXT}" if fmt == "react" else NO_CALL_TEXT
    if fmt == "nous":
        return "\n".join(
            "<tool_call>\n" + json.dumps({"name": n, "arguments": a}, ensure_ascii=False) + "\n</tool_call>"
            for n, a in calls
        )
    if fmt == "qwen":
        return "".join(f"✿FUNCTION✿: {n}\n✿ARGS✿: {d}\n" for (n, _), d in zip(calls, dumps, strict=True))
    if fmt == "react":
        steps = "".join(f"Action: {n}\nAction Input: {d}\n" for (n, _), d in zip(calls, dumps, strict=True))
        return "Thought: I should call the functions.\n" + steps
    if fmt == "native":
        return Completion(text="", finish_reason="tool_calls", tool_calls=tuple(
            ToolCall(name=n, arguments=a, raw_arguments=d) for (n, a), d in zip(calls, dumps, strict=True)
        ))
    raise ValueError(fmt)


def request_key(request: ChatRequest) -> str:
    return request.model_dump_json(include={"messages", "tools", "stop", "continue_final"})


def scripted_bfcl_model(
    task: BfclTask, items: Sequence[BfclItem], fmt: str, mutate: Any = None, name: str = "gold",
) -> FunctionModel:
    """A model answering each record's request with its gold calls (optionally mutated first)."""
    replies: dict[str, str | Completion] = {}
    for item in items:
        calls = gold_calls(item)
        if mutate is not None:
            calls = mutate(item, calls)
        key = request_key(task.request(item))
        reply = reply_with_calls(fmt, calls)
        assert replies.setdefault(key, reply) == reply, f"two records render identically: {item.id}"
        replies[key] = reply

    def answer(request: ChatRequest) -> str | Completion:
        return replies[request_key(request)]

    return FunctionModel(answer, name=name)


class CountingTask:
    """A generic task for runner tests: record ``r<i>`` scores ``i % 2``; solving is counted."""

    name = "counting"

    def __init__(self, n: int = 20, *, delay: float = 0.0, fail: set[str] | None = None,
                 hang: set[str] | None = None, salt: str = "") -> None:
        self.n = n
        self.delay = delay
        self.fail = fail or set()
        self.hang = hang or set()
        self.salt = salt
        self.solved: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def config(self) -> dict[str, Any]:
        return {"bench": self.name, "n": self.n, "salt": self.salt}

    def records(self) -> list[Any]:
        from qwenkit.bench.runner import BenchRecord

        return [BenchRecord(f"r{i}", "even" if i % 2 == 0 else "odd", i) for i in range(self.n)]

    async def solve(self, record: Any) -> dict[str, Any]:
        import asyncio

        self.solved.append(record.id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if record.id in self.hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(self.delay)
            if record.id in self.fail:
                raise RuntimeError(f"boom on {record.id}\nsecond line")
            return {"answer": record.data}
        finally:
            self.in_flight -= 1

    async def score(self, record: Any, result: dict[str, Any]) -> dict[str, Any]:
        return {"value": float(result["answer"] % 2), "reason": "ok" if result["answer"] % 2 else "wrong"}

    def summarize(self, rows: Any) -> Any:
        from qwenkit.bench.report import category_summary

        return category_summary(rows, ["even", "odd"])
