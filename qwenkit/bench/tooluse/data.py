"""Inputs of the tool-use benchmark: Qwen's ``exam_plugin_*_react_{positive,negative}.jsonl`` files, or
sets derived from BFCL (positives from simple_python and multiple, negatives from irrelevance) rendered in
Qwen's ReAct format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from qwenkit.bench.bfcl.data import load_category
from qwenkit.bench.bfcl.gold import gold_calls
from qwenkit.bench.bfcl.schema import to_tool_specs
from qwenkit.bench.bfcl.task import to_messages
from qwenkit.bench.datafile import first_problem, parse_jsonl, read_data_file
from qwenkit.bench.errors import BadData
from qwenkit.errors import ConfigError
from qwenkit.llm.formats import get_format
from qwenkit.types import Message, SystemMessage, UserMessage

QWEN_SYSTEM = "You are a helpful assistant."
"""The system message Qwen's chat() adds when the evaluation sends the raw prompt."""
REACT_STOP = ["Observation:"]

Kind = Literal["positive", "negative"]


@dataclass(frozen=True)
class ToolUseSample:
    """One prompt of the tool-use benchmark.

    Attributes:
        id: Unique id.
        kind: ``positive`` (a tool should be called) or ``negative`` (none should).
        messages: What is sent to the model.
        stop: Stop words.
        gold: The reference ReAct response (its ``Action`` and ``Action Input`` are compared).
        prefix: Text the model continues (for a rendered partial assistant turn); prepended to its output.
        continue_final: The last message is a partial assistant turn.
    """

    id: str
    kind: Kind
    messages: list[Message]
    stop: list[str] = field(default_factory=lambda: list(REACT_STOP))
    gold: str = ""
    prefix: str = ""
    continue_final: bool = False


class _QwenLine(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    prompt: str
    response: str = ""


def load_qwen_file(path: str | Path, kind: Kind) -> list[ToolUseSample]:
    """Read one of Qwen's ``exam_plugin_*_react_*.jsonl`` files (``prompt``, ``response`` per line).

    Raises:
        MissingData: The file does not exist.
        BadData: It is not JSON Lines, a line lacks a string ``prompt``, or it has no samples.
    """
    p = Path(path)
    samples = []
    for n, obj in parse_jsonl(read_data_file(p, f"tool-use {kind} file"), str(p)):
        try:
            job = _QwenLine.model_validate(obj)
        except ValidationError as exc:
            raise BadData(f"{p} line {n} is not a {{\"prompt\", \"response\"}} object ({first_problem(exc)}).") from exc
        samples.append(ToolUseSample(
            id=f"{kind}_{n}", kind=kind,
            messages=[SystemMessage(content=QWEN_SYSTEM), UserMessage(content=job.prompt)], gold=job.response,
        ))
    if not samples:
        raise BadData(f"tool-use {kind} file {p} has no samples.")
    return samples


def gold_react(name: str, arguments: dict[str, object]) -> str:
    """A reference ReAct response calling ``name`` with ``arguments``."""
    args = json.dumps(arguments, ensure_ascii=False)
    return f"Thought: I should use {name}.\nAction: {name}\nAction Input: {args}\n"


def bfcl_samples(data_dir: Path, limit: int | None = None) -> list[ToolUseSample]:
    """Positives from BFCL simple_python and multiple, negatives from irrelevance, in Qwen's ReAct format.

    Args:
        data_dir: The BFCL data folder.
        limit: Take only the first ``limit`` records of each BFCL category.
    """
    if limit is not None and limit < 0:
        raise ConfigError(f"the record limit must be 0 or more (got {limit}).")
    react = get_format("react")
    out: list[ToolUseSample] = []
    plan: tuple[tuple[str, Kind], ...] = (
        ("simple_python", "positive"), ("multiple", "positive"), ("irrelevance", "negative"))
    for category, kind in plan:
        items = load_category(data_dir, category)[:limit]
        for item in items:
            rendered = react.render(to_messages(item.messages), to_tool_specs(item.functions))
            gold = ""
            if kind == "positive":
                name, args = gold_calls(item)[0]
                gold = gold_react(name, args)
            last = rendered.messages[-1]
            prefix = last.content if rendered.continue_final else ""
            out.append(ToolUseSample(
                id=item.id, kind=kind, messages=list(rendered.messages), stop=list(rendered.stop), gold=gold,
                prefix=prefix, continue_final=rendered.continue_final,
            ))
    return out


def samples_fingerprint(samples: list[ToolUseSample]) -> str:
    """Short hash of the samples (part of the run configuration)."""
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps([s.id, s.kind, [m.model_dump() for m in s.messages], s.stop, s.gold],
                            ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:16]
