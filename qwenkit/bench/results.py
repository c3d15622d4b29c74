"""Result types shared by the benchmark runner, the reports and every task, and the ``results.jsonl`` format.

Nothing here imports another ``qwenkit.bench`` module: `runner` and `report` both build on it, so neither
needs the other. The file format, one JSON object per line::

    {"type": "header", "format_version": 1, "bench": ..., "config_hash": ..., "config": {...}, ...}
    {"type": "result", "id": ..., "category": ..., "status": "ok"|"error", "result": {...}, ...}

A results file is untrusted input when a run resumes from it (it may have been cut by a kill, edited, or be
something else entirely): `parse_results` either returns its content or raises `ResultsFileError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from qwenkit._jsonl import iter_lines, loads_object
from qwenkit.bench.errors import ResultsFileError

RESULTS_FILE = "results.jsonl"
FORMAT_VERSION = 1


# -------------------------------------------------------------------------------------------- types

@dataclass(frozen=True)
class BenchRecord:
    """One item of a benchmark.

    Attributes:
        id: Unique id within the benchmark (the resume key).
        category: Category the record is scored under.
        data: Whatever the task needs to solve and score it.
    """

    id: str
    category: str
    data: Any = None


@dataclass
class ResultRow:
    """One line of ``results.jsonl``: a finished record.

    Attributes:
        id: The record id.
        category: The record's category.
        status: ``ok`` or ``error`` (solving or scoring raised, or timed out).
        result: What ``solve`` returned (empty on error).
        score: What ``score`` returned (``{"value": 0.0, "reason": "error"}`` on error).
        error: ``Type: message`` when status is ``error``.
        duration_s: Wall-clock seconds spent on the record.
    """

    id: str
    category: str
    status: Literal["ok", "error"]
    result: dict[str, Any] = field(default_factory=dict)
    score: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The row as its ``results.jsonl`` object."""
        return {
            "type": "result", "id": self.id, "category": self.category, "status": self.status,
            "result": self.result, "score": self.score, "error": self.error,
            "duration_s": round(self.duration_s, 4),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ResultRow:
        """Read a row back from its ``results.jsonl`` object.

        Raises:
            ValueError: ``obj`` is not a result row (a pydantic ``ValidationError``).
        """
        line = _ResultLine.model_validate(obj)
        return cls(id=line.id, category=line.category, status=line.status, result=line.result,
                   score=line.score, error=line.error, duration_s=line.duration_s)


@dataclass
class RunOutcome:
    """What `qwenkit.bench.runner.run_bench` did.

    Attributes:
        rows: The latest row of every record of the task, in the task's record order.
        done_now: Records solved in this call.
        reused: Records taken from the existing file (``resume``).
        elapsed_s: Wall-clock seconds of this call.
        config: The task configuration.
        config_hash: Its hash (also in the file's header).
    """

    rows: list[ResultRow]
    done_now: int
    reused: int
    elapsed_s: float
    config: dict[str, Any]
    config_hash: str


@dataclass
class GroupCount:
    """How many records a score is over.

    Attributes:
        n: Records counted.
        errors: Of those, records whose run errored (counted as failures).
    """

    n: int = 0
    errors: int = 0


@dataclass
class Summary:
    """A benchmark's numbers.

    Attributes:
        scores: Metric name → value in [0, 1]; these are the table rows and the chart bars.
        counts: Metric name → the records it is computed over.
        overall: The headline number, if the benchmark has one.
        overall_name: What the headline number is.
        notes: Lines a reader needs to interpret the numbers (tokenizer, judge, missing data).
        reasons: Category → verdict reason → count.
        lower_is_better: Metrics where a smaller value is better (shown as such).
    """

    scores: dict[str, float]
    counts: dict[str, GroupCount] = field(default_factory=dict)
    overall: float | None = None
    overall_name: str = "overall"
    notes: list[str] = field(default_factory=list)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    lower_is_better: list[str] = field(default_factory=list)


class BenchTask(Protocol):
    """What `qwenkit.bench.runner.run_bench` needs from a benchmark."""

    name: str
    """Short name of the benchmark (``bfcl``, ``tooluse``, ``codeinterp``)."""

    def config(self) -> dict[str, Any]:
        """Everything that changes the results (model, format, sampling, data version, scorer version).

        Must be JSON-serialisable; its hash guards ``resume``.
        """
        ...

    def records(self) -> Sequence[BenchRecord]:
        """The records to run, in a stable order."""
        ...

    async def solve(self, record: BenchRecord) -> dict[str, Any]:
        """Ask the model about ``record``; return a JSON-serialisable result. May raise."""
        ...

    async def score(self, record: BenchRecord, result: dict[str, Any]) -> dict[str, Any]:
        """Judge ``result``; return a JSON-serialisable dict with at least ``value`` (0..1) and ``reason``."""
        ...

    def summarize(self, rows: Sequence[ResultRow]) -> Summary:
        """Turn the rows of all records into the benchmark's numbers."""
        ...


@runtime_checkable
class PreparedTask(Protocol):
    """A benchmark with work shared by several records (BFCL memory's prerequisite conversations)."""

    async def prepare(self, records: Sequence[BenchRecord]) -> None:
        """Do the shared work of ``records``; `run_bench` calls it once, before them and outside their timeouts."""
        ...


# ------------------------------------------------------------------------------------- file format

class _Line(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _HeaderLine(_Line):
    type: Literal["header"]
    format_version: int
    bench: str = ""
    config_hash: str
    config: dict[str, Any]


class _ResultLine(_Line):
    type: Literal["result"] = "result"
    id: str
    category: str
    status: Literal["ok", "error"]
    result: dict[str, Any] = {}
    score: dict[str, Any] = {}
    error: str | None = None
    duration_s: float = 0.0


def _header(obj: dict[str, Any]) -> _HeaderLine | None:
    try:
        return _HeaderLine.model_validate(obj)
    except ValidationError:
        return None


def _row(obj: dict[str, Any]) -> ResultRow | None:
    try:
        return ResultRow.from_json(obj)
    except ValidationError:
        return None


def is_valid_line(text: str) -> bool:
    """Whether one line of a results file is a well-formed header or result row."""
    obj = loads_object(text)
    if obj is None:
        return False
    return (_header(obj) if obj.get("type") == "header" else _row(obj)) is not None


def parse_results(data: bytes, source: str = "results file") -> tuple[dict[str, Any] | None, dict[str, ResultRow]]:
    """Parse the bytes of a results file: its header and the last row of each id.

    The last line may be cut by a kill (even inside a UTF-8 character) or be a corrupt line followed by a
    newline; it is ignored (`qwenkit.bench.runner.run_bench` cuts it off before appending). Blank lines are
    skipped. Any other line must be a well-formed header (the first line) or result row.

    Args:
        data: The file's bytes.
        source: How to name the file in errors (its path).

    Returns:
        The header object (``None`` for a file with no complete line) and the rows by id.

    Raises:
        ResultsFileError: The file is not a qwenkit results file, or was edited.
    """
    header: dict[str, Any] | None = None
    rows: dict[str, ResultRow] = {}
    seen = False  # a record before this line
    cut = not data.endswith(b"\n")
    for n, text, is_last in iter_lines(data):
        if is_last and cut:
            break  # no newline: a write cut short, even if it happens to parse (the tail repair drops it too)
        if not text.strip():
            continue  # never written, but harmless (an editor's trailing blank line); the tail repair keeps it
        obj = loads_object(text)
        parsed: _HeaderLine | ResultRow | None = None
        if obj is not None:
            parsed = _header(obj) if obj.get("type") == "header" else _row(obj)
        if parsed is None:
            if is_last:
                break  # a record cut short by a kill, or the corrupt tail it left
            raise ResultsFileError(f"{source} line {n} is not a results record; it is not a qwenkit results "
                                   "file, or it was edited.")
        first = not seen
        seen = True
        if first and not isinstance(parsed, _HeaderLine):
            raise ResultsFileError(f"{source} does not start with a header line; it was not written by "
                                   "qwenkit bench.")
        if isinstance(parsed, _HeaderLine):
            if not first:
                raise ResultsFileError(f"{source} line {n} is a second header; it was edited or two files were "
                                       "joined.")
            if parsed.format_version != FORMAT_VERSION:
                raise ResultsFileError(f"{source} has results format {parsed.format_version}; this qwenkit "
                                       f"reads format {FORMAT_VERSION}.")
            assert obj is not None
            header = obj
        else:
            rows[parsed.id] = parsed
    return header, rows


def read_results(path: Path) -> tuple[dict[str, Any] | None, dict[str, ResultRow]]:
    """Read a results file: its header and the last row of each id (see `parse_results`).

    Raises:
        ResultsFileError: The file cannot be read, is not a qwenkit results file, or was edited.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsFileError(f"cannot read {path}: {exc.strerror or exc}.") from exc
    return parse_results(data, str(path))


__all__ = [
    "FORMAT_VERSION", "RESULTS_FILE", "BenchRecord", "BenchTask", "GroupCount", "PreparedTask", "ResultRow",
    "RunOutcome", "Summary", "is_valid_line", "parse_results", "read_results",
]
