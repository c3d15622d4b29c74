"""The tool-use benchmark task: one model call per sample, scored with Qwen's three metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qwenkit.bench.results import BenchRecord, GroupCount, ResultRow, Summary
from qwenkit.bench.tooluse.data import ToolUseSample, samples_fingerprint
from qwenkit.bench.tooluse.metrics import calls_tool, input_rouge_l, selects_tool
from qwenkit.bench.tooluse.tokenizers import NamedTokenizer
from qwenkit.llm.base import ChatModel, ChatRequest, Sampling

SCORER_VERSION = 1
SELECTION = "tool_selection_accuracy"
ROUGE = "tool_input_rouge_l"
FALSE_POSITIVE = "false_positive_rate"
NO_FALSE_CALL = "no_false_call_accuracy"


class ToolUseTask:
    """Qwen's Tool-Use benchmark over positive and negative ReAct samples.

    Args:
        model: The model under test.
        samples: Positive and negative samples.
        tokenizer: Tokenizer for the Tool Input ROUGE-L.
        source: Where the samples came from (``bfcl`` or ``qwen``), for the report.
        sampling: Sampling settings (temperature 0, seed 0 by default).
        notes: Extra lines for the report (e.g. a tokenizer warning).
    """

    name = "tooluse"

    def __init__(
        self,
        model: ChatModel,
        samples: Sequence[ToolUseSample],
        tokenizer: NamedTokenizer,
        *,
        source: str,
        sampling: Sampling | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.samples = list(samples)
        self.tokenizer = tokenizer
        self.source = source
        self.sampling = sampling or Sampling()
        self.notes = list(notes)

    def config(self) -> dict[str, Any]:
        """Model, sample source and fingerprint, tokenizer, sampling and scorer version."""
        return {
            "bench": self.name, "model": self.model.name, "format": "react", "source": self.source,
            "samples": samples_fingerprint(self.samples), "tokenizer": self.tokenizer.name,
            "sampling": self.sampling.model_dump(), "scorer_version": SCORER_VERSION,
        }

    def records(self) -> list[BenchRecord]:
        """One record per sample, categorised ``positive`` or ``negative``."""
        return [BenchRecord(s.id, s.kind, s) for s in self.samples]

    async def solve(self, record: BenchRecord) -> dict[str, Any]:
        """One model call; the output text (after any continued prefix) is stored."""
        sample: ToolUseSample = record.data
        request = ChatRequest(messages=sample.messages, stop=sample.stop, continue_final=sample.continue_final,
                              sampling=self.sampling)
        completion = await self.model.complete(request)
        return {"text": sample.prefix + completion.text, "finish_reason": completion.finish_reason,
                "usage": completion.usage.model_dump()}

    async def score(self, record: BenchRecord, result: dict[str, Any]) -> dict[str, Any]:
        """Positive: tool selected and ROUGE-L of the input; negative: whether a tool was called."""
        sample: ToolUseSample = record.data
        text = result["text"]
        if sample.kind == "negative":
            called = calls_tool(text)
            return {"value": 0.0 if called else 1.0, "called_tool": called,
                    "reason": "false_positive" if called else "ok"}
        selected = selects_tool(text, sample.gold)
        rouge = input_rouge_l(text, sample.gold, self.tokenizer.tokenize)
        return {"value": 1.0 if selected else 0.0, "selected": selected, "rouge_l": rouge,
                "reason": "ok" if selected else "wrong_or_no_tool"}

    def summarize(self, rows: Sequence[ResultRow]) -> Summary:
        """The three metrics (and the complement of False Positive); errored rows count as failures."""
        pos = [r for r in rows if r.category == "positive"]
        neg = [r for r in rows if r.category == "negative"]
        scores: dict[str, float] = {}
        counts: dict[str, GroupCount] = {}
        if pos:
            n_err = sum(r.status != "ok" for r in pos)
            scores[SELECTION] = sum(r.status == "ok" and r.score["selected"] for r in pos) / len(pos)
            scores[ROUGE] = sum(r.score["rouge_l"] for r in pos if r.status == "ok") / len(pos)
            counts[SELECTION] = counts[ROUGE] = GroupCount(len(pos), n_err)
        if neg:
            n_err = sum(r.status != "ok" for r in neg)
            fp = sum(r.status != "ok" or r.score["called_tool"] for r in neg) / len(neg)
            scores[FALSE_POSITIVE] = fp
            scores[NO_FALSE_CALL] = 1.0 - fp
            counts[FALSE_POSITIVE] = counts[NO_FALSE_CALL] = GroupCount(len(neg), n_err)
        notes = [
            f"Samples: {self.source} ({len(pos)} positive, {len(neg)} negative), ReAct format; "
            f"model {self.model.name}.",
            f"Tool Input ROUGE-L tokenizer: {self.tokenizer.name}.",
            f"{FALSE_POSITIVE}: share of negative samples where the model called a tool (lower is better); "
            f"{NO_FALSE_CALL} is its complement, the number Qwen's post reports.",
            "Errored requests count as failures (no selection, ROUGE-L 0, a false positive).",
            *self.notes,
        ]
        reasons = {cat: {} for cat in ("positive", "negative")}
        for r in rows:
            reason = str(r.score.get("reason", "error")) if r.status == "ok" else "error"
            reasons[r.category][reason] = reasons[r.category].get(reason, 0) + 1
        return Summary(scores=scores, counts=counts, notes=notes, reasons=reasons,
                       lower_is_better=[FALSE_POSITIVE])
