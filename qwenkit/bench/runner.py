"""The benchmark runner: solves records concurrently and appends each result to a resumable JSON Lines file.

A benchmark is a `BenchTask`: a list of `BenchRecord` (each with an id and a category), an async
``solve`` that asks the model, and a ``score`` that judges the answer. `run_bench` runs the records
under a semaphore, one ``asyncio.wait_for`` timeout per record, and writes one line per finished record
(flushed at once) to ``results.jsonl``. The file's first line is a header holding a hash of the task's
configuration; ``resume=True`` refuses a file written with another configuration and skips every id the
file already has.

Errored records (timeouts, server errors) are written with their error and count as failures. They are
finished records too: ``resume`` keeps them, because an error is part of what was measured (a model that
times out on a record should not be retried until it happens to answer). ``retry_errors=True`` re-does
them; the new line supersedes the old one (the last line of an id wins).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from qwenkit.errors import ConfigError

if TYPE_CHECKING:
    from qwenkit.bench.report import Summary

RESULTS_FILE = "results.jsonl"
FORMAT_VERSION = 1


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


class BenchTask(Protocol):
    """What `run_bench` needs from a benchmark."""

    name: str
    """Short name of the benchmark (``bfcl``, ``tooluse``, ``codeinterp``)."""

    def config(self) -> dict[str, Any]:
        """Everything that changes the results (model, format, sampling, data version, scorer version).

        Must be JSON-serialisable; its hash guards ``--resume``.
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
        return {
            "type": "result", "id": self.id, "category": self.category, "status": self.status,
            "result": self.result, "score": self.score, "error": self.error,
            "duration_s": round(self.duration_s, 4),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ResultRow:
        return cls(
            id=str(obj["id"]), category=str(obj["category"]), status=obj["status"],
            result=obj.get("result") or {}, score=obj.get("score") or {}, error=obj.get("error"),
            duration_s=float(obj.get("duration_s", 0.0)),
        )


@dataclass
class RunOutcome:
    """What `run_bench` did.

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


def config_hash(config: dict[str, Any]) -> str:
    """Return a short stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_results(path: Path) -> tuple[dict[str, Any] | None, dict[str, ResultRow]]:
    """Read a results file: its header and the last row of each id.

    A last line cut by a kill (no newline, unparsable) is ignored; `run_bench` truncates it before
    appending.

    Raises:
        ConfigError: The file is not a qwenkit results file.
    """
    header: dict[str, Any] | None = None
    rows: dict[str, ResultRow] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break  # a write cut short by a kill
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path} line {n} is not JSON ({exc.msg}); it is not a qwenkit results "
                                  "file, or it was edited: move it away or pass --overwrite.") from exc
            if obj.get("type") == "header":
                header = obj
            elif obj.get("type") == "result":
                row = ResultRow.from_json(obj)
                rows[row.id] = row
    if rows and header is None:
        raise ConfigError(f"{path} has no header line; it was not written by qwenkit bench. "
                          "Move it away or pass --overwrite.")
    return header, rows


def _truncate_partial_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as f:
            f.truncate(keep)


class _RateColumn(ProgressColumn):
    """Records per second over the run."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("? rec/s" if speed is None else f"{speed:.1f} rec/s", style="progress.data.speed")


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
        TextColumn("errors: {task.fields[errors]}"), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), console=console, transient=False,
    )


def _error_text(exc: BaseException, timeout: float | None) -> str:
    if isinstance(exc, TimeoutError):
        return f"Timeout: no result within {timeout:g} s"
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")


async def _one(task: BenchTask, record: BenchRecord, timeout: float | None) -> ResultRow:
    start = time.perf_counter()
    try:
        result = await asyncio.wait_for(task.solve(record), timeout)
        score = await task.score(record, result)
    except Exception as exc:  # every failure (TimeoutError included) is recorded, never dropped
        return ResultRow(record.id, record.category, "error", score={"value": 0.0, "reason": "error"},
                         error=_error_text(exc, timeout), duration_s=time.perf_counter() - start)
    return ResultRow(record.id, record.category, "ok", result=result, score=score,
                     duration_s=time.perf_counter() - start)


async def run_bench(
    task: BenchTask,
    out_dir: str | Path,
    *,
    concurrency: int = 16,
    timeout: float | None = 300.0,
    resume: bool = False,
    retry_errors: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> RunOutcome:
    """Run every record of ``task`` not yet in ``out_dir/results.jsonl`` and append its row.

    Args:
        task: The benchmark.
        out_dir: Output folder; created if missing.
        concurrency: Records in flight at once.
        timeout: Seconds allowed per record (solve and score), ``None`` for no limit.
        resume: Continue an existing results file written with the same configuration.
        retry_errors: With ``resume``, re-do records whose row is an error.
        overwrite: Delete an existing results file and start over.
        progress: Show a progress bar with throughput and ETA.
        console: Where the progress bar goes (default: stderr).

    Returns:
        The rows of all the task's records and what was done.

    Raises:
        ConfigError: A results file exists and neither ``resume`` nor ``overwrite`` was given, or it was
            written with another configuration, or ``concurrency`` is below 1.
    """
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1 (got {concurrency}).")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    cfg = task.config()
    digest = config_hash(cfg)
    records = list(task.records())
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"benchmark {task.name!r} has duplicate record ids")

    existing: dict[str, ResultRow] = {}
    if path.exists() and overwrite:
        path.unlink()
    elif path.exists() and not resume:
        raise ConfigError(f"{path} already exists: pass --resume to continue that run, --overwrite to start "
                          "over, or choose another --out.")
    elif path.exists():
        header, existing = read_results(path)
        if header is not None and header.get("config_hash") != digest:
            changed = sorted(k for k in set(cfg) | set(header.get("config", {}))
                             if cfg.get(k) != header.get("config", {}).get(k))
            raise ConfigError(f"cannot resume {path}: it was written with another configuration "
                              f"(differs in: {', '.join(changed) or 'hash'}); use the same options, "
                              "another --out, or --overwrite.")
        _truncate_partial_line(path)
        if header is None:  # an empty file: nothing to keep
            path.unlink()

    todo = [r for r in records
            if r.id not in existing or (retry_errors and existing[r.id].status == "error")]
    reused = len(records) - len(todo)
    new_file = not path.exists()
    rows = dict(existing)
    start = time.perf_counter()
    with path.open("a", encoding="utf-8") as f:
        if new_file:
            header_obj = {"type": "header", "format_version": FORMAT_VERSION, "bench": task.name,
                          "config_hash": digest, "config": cfg,
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            f.write(json.dumps(header_obj, ensure_ascii=False, default=str) + "\n")
            f.flush()

        sem = asyncio.Semaphore(concurrency)
        bar = _progress(console or Console(stderr=True)) if progress else None
        bar_task = bar.add_task(task.name, total=len(todo), errors=0) if bar else None
        errors = 0

        async def guarded(record: BenchRecord) -> None:
            nonlocal errors
            async with sem:
                row = await _one(task, record, timeout)
            f.write(json.dumps(row.to_json(), ensure_ascii=False, default=str) + "\n")
            f.flush()
            rows[row.id] = row
            errors += row.status == "error"
            if bar is not None and bar_task is not None:
                bar.update(bar_task, advance=1, errors=errors)

        if bar is not None:
            bar.start()
        try:
            async with asyncio.TaskGroup() as group:
                for record in todo:
                    group.create_task(guarded(record))
        finally:
            if bar is not None:
                bar.stop()
            f.flush()
            os.fsync(f.fileno())
    return RunOutcome(
        rows=[rows[i] for i in ids if i in rows], done_now=len(todo), reused=reused,
        elapsed_s=time.perf_counter() - start, config=cfg, config_hash=digest,
    )
