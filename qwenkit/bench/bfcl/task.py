"""The BFCL benchmark task: render each question in a prompt format, one model call, parse, check.

BFCL's single-turn categories need no tool execution: the calls the model writes are compared with the
possible answers by `qwenkit.bench.bfcl.checker`. Per-category accuracy is the share of valid records;
the overall is the unweighted mean of the categories, as BFCL reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwenkit.bench.bfcl import checker
from qwenkit.bench.bfcl.data import BFCL_VERSION, BfclItem, check_categories, fingerprint, load_category
from qwenkit.bench.bfcl.schema import to_tool_specs
from qwenkit.bench.report import category_summary
from qwenkit.bench.results import BenchRecord, ResultRow, Summary
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatModel, ChatRequest, Sampling
from qwenkit.llm.formats import get_format
from qwenkit.llm.formats.base import ParsedReply, PromptFormat
from qwenkit.types import Completion, Message, SystemMessage, UserMessage

SCORER_VERSION = 1


def to_messages(raw: Sequence[dict[str, str]]) -> list[Message]:
    """BFCL's ``[{"role", "content"}]`` turn as typed messages (system and user roles)."""
    out: list[Message] = []
    for m in raw:
        if m["role"] == "system":
            out.append(SystemMessage(content=m["content"]))
        else:
            out.append(UserMessage(content=m["content"]))
    return out


def result_of(completion: Completion, reply: ParsedReply) -> dict[str, Any]:
    """What is stored per record: the raw text, native calls, the parsed calls and parse problems."""
    return {
        "text": completion.text,
        "native_calls": [{"name": c.name, "arguments": c.raw_arguments} for c in completion.tool_calls],
        "calls": [{"name": c.name, "arguments": c.arguments, "arguments_error": c.arguments_error}
                  for c in reply.tool_calls],
        "problems": list(reply.problems),
        "finish_reason": completion.finish_reason,
        "usage": completion.usage.model_dump(),
    }


class BfclTask:
    """BFCL single-turn AST categories for one model and prompt format.

    Args:
        model: The model under test.
        format: Prompt format name (``nous``, ``qwen``, ``react``, ``native``) or instance.
        data_dir: Folder with the BFCL files.
        categories: Categories to run, in report order.
        sampling: Sampling settings (temperature 0, seed 0 by default).
        limit: Run only the first ``limit`` records of each category.
        ids: Run only these record ids.
    """

    name = "bfcl"

    def __init__(
        self,
        model: ChatModel,
        format: str | PromptFormat,
        data_dir: Path,
        categories: Sequence[str],
        *,
        sampling: Sampling | None = None,
        limit: int | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        self.model = model
        self.fmt = get_format(format) if isinstance(format, str) else format
        self.data_dir = Path(data_dir)
        self.categories = check_categories(categories)
        if limit is not None and limit < 0:
            raise ConfigError(f"the record limit must be 0 or more (got {limit}).")
        self.sampling = sampling or Sampling()
        self.limit = limit
        self.ids = set(ids) if ids else None
        self._records: list[BenchRecord] | None = None

    def config(self) -> dict[str, Any]:
        """Model, format, categories, selection, sampling, data fingerprint and scorer version."""
        return {
            "bench": self.name, "model": self.model.name, "format": self.fmt.name,
            "categories": self.categories, "limit": self.limit,
            "ids": sorted(self.ids) if self.ids else None,
            "sampling": self.sampling.model_dump(), "bfcl_version": BFCL_VERSION,
            "data": fingerprint(self.data_dir, self.categories), "scorer_version": SCORER_VERSION,
        }

    def records(self) -> list[BenchRecord]:
        """The selected records of every category (read once)."""
        if self._records is None:
            records = []
            for cat in self.categories:
                items = load_category(self.data_dir, cat)
                if self.ids is not None:
                    items = [i for i in items if i.id in self.ids]
                if self.limit is not None:
                    items = items[: self.limit]
                records += [BenchRecord(i.id, cat, i) for i in items]
            self._records = records
        return self._records

    def request(self, item: BfclItem) -> ChatRequest:
        """The chat request for one record, rendered in the task's format."""
        rendered = self.fmt.render(to_messages(item.messages), to_tool_specs(item.functions))
        return ChatRequest(
            messages=rendered.messages, stop=rendered.stop, tools=rendered.tools,
            tool_choice=rendered.tool_choice,
            continue_final=rendered.continue_final, sampling=self.sampling,
        )

    async def solve(self, record: BenchRecord) -> dict[str, Any]:
        """One model call; the parsed reply is stored, checking happens in `score`."""
        item: BfclItem = record.data
        completion = await self.model.complete(self.request(item))
        return result_of(completion, self.fmt.parse_completion(completion))

    async def score(self, record: BenchRecord, result: dict[str, Any]) -> dict[str, Any]:
        """BFCL's verdict on the stored calls."""
        item: BfclItem = record.data
        calls: list[checker.Call] = [{c["name"]: c["arguments"]} for c in result["calls"]]
        undecodable = next(
            (f"arguments of {c['name'] or '(no name)'} could not be read: {c['arguments_error']}"
             for c in result["calls"] if c.get("arguments_error") is not None),
            None,
        )
        verdict = checker.check(item.category, item.functions, calls, item.ground_truth, undecodable=undecodable)
        return {"value": 1.0 if verdict.valid else 0.0, "valid": verdict.valid, "reason": verdict.reason,
                "detail": verdict.detail}

    def summarize(self, rows: Sequence[ResultRow]) -> Summary:
        """Accuracy per category and their unweighted mean."""
        summary = category_summary(rows, self.categories, overall_name="overall (mean of categories)")
        summary.notes.append(f"BFCL {BFCL_VERSION} data, AST checker rules; format {self.fmt.name}; "
                             f"model {self.model.name}.")
        return summary
