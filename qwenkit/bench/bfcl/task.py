"""The BFCL benchmark task: every single-turn and multi-turn category of bfcl-eval, in FC or prompt mode.

Single-turn categories need no tool execution: one model call, the calls it writes are compared with the
possible answers by `qwenkit.bench.bfcl.checker`. Multi-turn entries run through `qwenkit.Agent` against
bfcl-eval's own API classes (`qwenkit.bench.bfcl.multiturn`); memory_kv and memory_rec_sum questions
likewise, after their prerequisite conversations, on bfcl-eval's memory classes (`qwenkit.bench.bfcl.memory`).
Per-category accuracy is the share of valid records; the group scores and the v4 overall follow bfcl-eval's
arithmetic (`qwenkit.bench.bfcl.categories`).

Modes: ``fc`` prompts with any qwenkit format (today's behaviour); ``prompt`` renders BFCL's own prompt-mode
system prompt and reads the reply as BFCL's prompt-mode decoder does (the ``pythonic`` format).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwenkit.bench.bfcl import checker
from qwenkit.bench.bfcl.categories import is_memory, is_multi_turn, v4_scores
from qwenkit.bench.bfcl.data import BFCL_VERSION, BfclItem, check_categories, fingerprint, load_category
from qwenkit.bench.bfcl.memory import MemoryEntry, MemoryRunner, load_memory, score_answer
from qwenkit.bench.bfcl.multiturn import MultiTurnEntry, load_multi_turn, run_entry, score_entry, trajectory_calls
from qwenkit.bench.bfcl.schema import to_tool_specs, with_language_hints
from qwenkit.bench.errors import UnknownRecords
from qwenkit.bench.report import category_summary
from qwenkit.bench.results import BenchRecord, ResultRow, Summary
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatModel, ChatRequest, Sampling
from qwenkit.llm.formats import get_format
from qwenkit.llm.formats.base import ParsedReply, PromptFormat
from qwenkit.llm.formats.pythonic import PythonicFormat, system_prompt
from qwenkit.types import Completion, Message, SystemMessage, UserMessage

SCORER_VERSION = 2
MODES = ("fc", "prompt")


def to_messages(raw: Sequence[dict[str, str]]) -> list[Message]:
    """BFCL's ``[{"role", "content"}]`` turn as typed messages (system and user roles)."""
    out: list[Message] = []
    for m in raw:
        if m["role"] == "system":
            out.append(SystemMessage(content=m["content"]))
        else:
            out.append(UserMessage(content=m["content"]))
    return out


def with_system_prompt(messages: Sequence[Message], functions: list[dict[str, Any]]) -> list[Message]:
    """BFCL's prompt-mode system prompt put first (before the record's own system text, after a blank line)."""
    out = list(messages)
    prompt = system_prompt(functions)
    if out and isinstance(out[0], SystemMessage):
        out[0] = SystemMessage(content=prompt + "\n\n" + out[0].content)
    else:
        out.insert(0, SystemMessage(content=prompt))
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
        mode: ``fc`` (the given format) or ``prompt`` (BFCL's prompt-mode system prompt and decoding; the
            format must then be ``pythonic``).
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
        mode: str = "fc",
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown BFCL mode {mode!r}; choose fc or prompt.")
        self.mode = mode
        self.model = model
        if mode == "prompt":
            if (format if isinstance(format, str) else format.name) != "pythonic":
                raise ConfigError("BFCL's prompt mode uses its own Python call-list format: use the pythonic format.")
            # BFCL's decoder, and BFCL's system prompt written by the task (with BFCL's own function docs).
            self.fmt: PromptFormat = PythonicFormat(strict=True, tools_in_prompt=False)
        elif format == "pythonic":
            self.fmt = PythonicFormat()
        else:
            self.fmt = get_format(format) if isinstance(format, str) else format
        self.data_dir = Path(data_dir)
        self.categories = check_categories(categories)
        if limit is not None and limit < 0:
            raise ConfigError(f"the record limit must be 0 or more (got {limit}).")
        self.sampling = sampling or Sampling()
        self.limit = limit
        self.ids = set(ids) if ids else None
        self._records: list[BenchRecord] | None = None
        self._converters: dict[str, checker.Converter] = {}
        self._memory: MemoryRunner | None = None

    def config(self) -> dict[str, Any]:
        """Model, format, categories, selection, sampling, data fingerprint and scorer version."""
        return {
            "bench": self.name, "model": self.model.name, "format": self.fmt.name, "mode": self.mode,
            "categories": self.categories, "limit": self.limit,
            "ids": sorted(self.ids) if self.ids else None,
            "sampling": self.sampling.model_dump(), "bfcl_version": BFCL_VERSION,
            "data": fingerprint(self.data_dir, self.categories), "scorer_version": SCORER_VERSION,
        }

    def records(self) -> list[BenchRecord]:
        """The selected records of every category (read once).

        Raises:
            UnknownRecords: ``ids`` names a record none of the categories has.
        """
        if self._records is None:
            records = []
            found: set[str] = set()
            for cat in self.categories:
                items: list[Any] = (load_multi_turn(self.data_dir, cat) if is_multi_turn(cat)
                                    else load_memory(self.data_dir, cat) if is_memory(cat)
                                    else load_category(self.data_dir, cat))
                if self.ids is not None:
                    items = [i for i in items if i.id in self.ids]
                    found.update(i.id for i in items)
                if self.limit is not None:
                    items = items[: self.limit]
                scenarios: set[str] = set()
                for item in items:
                    if isinstance(item, MemoryEntry):  # the row that carries the prerequisite trajectories
                        item.first_of_scenario = item.scenario not in scenarios
                        scenarios.add(item.scenario)
                records += [BenchRecord(i.id, cat, i) for i in items]
            unknown = sorted((self.ids or set()) - found)
            if unknown:  # a mistyped id would otherwise run nothing and score an empty benchmark
                shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                raise UnknownRecords(f"no record {shown} in the categories {', '.join(self.categories)}.")
            self._records = records
        return self._records

    def request(self, item: BfclItem) -> ChatRequest:
        """The chat request for one record, rendered in the task's format (tools as BFCL shows them)."""
        shown = with_language_hints(item.functions, item.category)
        messages = to_messages(item.messages)
        if self.mode == "prompt":
            messages = with_system_prompt(messages, shown)
        rendered = self.fmt.render(messages, to_tool_specs(shown))
        return ChatRequest(
            messages=rendered.messages, stop=rendered.stop, tools=rendered.tools,
            tool_choice=rendered.tool_choice,
            continue_final=rendered.continue_final, sampling=self.sampling,
        )

    def memory_runner(self) -> MemoryRunner:
        """The runner of the memory categories (their snapshot folder and shared prerequisite conversations)."""
        if self._memory is None:
            self._memory = MemoryRunner(self.data_dir, self.model, self.fmt, self.sampling,
                                        prompt_mode=self.mode == "prompt")
        return self._memory

    async def prepare(self, records: Sequence[BenchRecord]) -> None:
        """Run the prerequisite conversations of the memory records among ``records``, every scenario at once.

        For a runner to call before the records, outside their per-record timeouts (a scenario's chain can take
        longer than one record may). Without it, `solve` runs a scenario's chain when its first question needs it.
        """
        entries = [r.data for r in records if isinstance(r.data, MemoryEntry)]
        if entries:
            await self.memory_runner().prepare(entries)

    async def solve(self, record: BenchRecord) -> dict[str, Any]:
        """Single-turn: one model call, parsed (checking happens in `score`). Multi-turn: the whole trajectory.

        Memory: the scenario's prerequisite conversations (once per task, shared), then the question.
        """
        if isinstance(record.data, MemoryEntry):
            return await self.memory_runner().run(record.data)
        if isinstance(record.data, MultiTurnEntry):
            return await run_entry(self.model, self.fmt, record.data, self.data_dir, self.sampling,
                                   prompt_mode=self.mode == "prompt")
        item: BfclItem = record.data
        completion = await self.model.complete(self.request(item))
        return result_of(completion, self.fmt.parse_completion(completion))

    async def score(self, record: BenchRecord, result: dict[str, Any]) -> dict[str, Any]:
        """BFCL's verdict on the stored calls (multi-turn: the official state and response checks; memory: the
        official agentic checker on the answer)."""
        if isinstance(record.data, MemoryEntry):
            return score_answer(self.data_dir, record.data, result)
        if isinstance(record.data, MultiTurnEntry):
            forced = any(t.get("ended") == "step_cap" for t in result.get("turns", []))
            return score_entry(self.data_dir, record.data, trajectory_calls(result), forced=forced)
        item: BfclItem = record.data
        calls: list[checker.Call] = [{c["name"]: c["arguments"]} for c in result["calls"]]
        undecodable = next(
            (f"arguments of {c['name'] or '(no name)'} could not be read: {c['arguments_error']}"
             for c in result["calls"] if c.get("arguments_error") is not None),
            None,
        )
        verdict = checker.check(item.category, item.functions, calls, item.ground_truth, undecodable=undecodable,
                                convert=self.converter(item.category))
        return {"value": 1.0 if verdict.valid else 0.0, "valid": verdict.valid, "reason": verdict.reason,
                "detail": verdict.detail}

    def converter(self, category: str) -> checker.Converter | None:
        """BFCL's official type converter for a Java or JavaScript category (from the fetched package)."""
        language = checker.language_of(category)
        if language == "python":
            return None
        if language not in self._converters:
            from qwenkit.bench.bfcl.package import load

            short = "java" if language == "java" else "js"
            module = load(self.data_dir, f"eval_checker.ast_eval.type_convertor.{short}_type_converter")
            self._converters[language] = getattr(module, f"{short}_type_converter")
        return self._converters[language]

    def summarize(self, rows: Sequence[ResultRow]) -> Summary:
        """Accuracy per category, BFCL's group scores and the v4 overall (marked partial when incomplete)."""
        summary = category_summary(rows, self.categories)
        counts = {c: g.n for c, g in summary.counts.items()}
        v4 = v4_scores(summary.scores, counts)
        for group, score in v4.groups.items():
            if not score.missing:
                summary.scores[f"group:{group}"] = score.accuracy
        partial = bool(v4.overall.missing) or self.limit is not None or self.ids is not None
        summary.overall = v4.overall.accuracy
        summary.overall_name = "BFCL v4 overall" + (" (PARTIAL)" if partial else "")
        summary.notes.append(f"BFCL {BFCL_VERSION}, mode {self.mode}, format {self.fmt.name}, model {self.model.name}.")
        if v4.overall.missing:
            summary.notes.append(
                "PARTIAL overall: BFCL counts categories that were not run as 0; missing: "
                + ", ".join(v4.overall.missing) + ".")
        if self.limit is not None or self.ids is not None:
            summary.notes.append("PARTIAL: only a subset of the records of each category was run.")
        summary.notes.append("Weights (bfcl-eval eval_runner_helper): non-live 10, live 10, irrelevance 10, "
                             "multi-turn 30, agentic 40; web_search and memory_vector cannot run offline.")
        return summary
