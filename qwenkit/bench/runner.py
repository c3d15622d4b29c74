"""The benchmark runner: solves records concurrently and appends each result to a resumable JSON Lines file.

A benchmark is a `BenchTask`: a list of `BenchRecord` (each with an id and a category), an async
``solve`` that asks the model, and a ``score`` that judges the answer. `run_bench` runs the records
with ``concurrency`` workers, one timeout per record's ``solve``, and writes one line per finished record
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
import math
import os
import time
from pathlib import Path
from typing import Any

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

from qwenkit._jsonl import repair_tail
from qwenkit._untrusted import clean_text
from qwenkit.bench.errors import ConfigChanged, OutputUnusable, ResultsExist
from qwenkit.bench.results import (
    FORMAT_VERSION,
    RESULTS_FILE,
    BenchRecord,
    BenchTask,
    PreparedTask,
    ResultRow,
    RunOutcome,
    is_valid_line,
    read_results,
)
from qwenkit.errors import BenchError, ConfigError


def config_hash(config: dict[str, Any]) -> str:
    """Return a short stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output folder if needed and check a results file can be written in it.

    Raises:
        OutputUnusable: The path is a file, lies under a file, or cannot be created or written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputUnusable(f"the output folder {out} is a file, not a folder.") from exc
    except OSError as exc:
        raise OutputUnusable(f"cannot create the output folder {out}: {exc.strerror or exc}.") from exc
    path = out / RESULTS_FILE
    if path.exists() and not path.is_file():
        raise OutputUnusable(f"{path} exists and is not a file.")
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputUnusable(f"the output folder {out} is not writable.")
    return out


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
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps the call in one more Task per record.
        async with asyncio.timeout(timeout):
            result = await task.solve(record)
        score = await task.score(record, result)
    except Exception as exc:  # every failure (TimeoutError included) is recorded, never dropped
        return ResultRow(record.id, record.category, "error", score={"value": 0.0, "reason": "error"},
                         error=_error_text(exc, timeout), duration_s=time.perf_counter() - start)
    return ResultRow(record.id, record.category, "ok", result=result, score=score,
                     duration_s=time.perf_counter() - start)


def _dumps(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, ensure_ascii=False, default=str)
    # A model's reply can hold lone surrogates, which cannot be written as UTF-8.
    return clean_text(text)[0]


def _row_line(row: ResultRow) -> tuple[str, ResultRow]:
    """The row's line; a result that cannot be written as JSON (nested too deeply) becomes an error row."""
    try:
        return _dumps(row.to_json()) + "\n", row
    except (ValueError, TypeError, RecursionError) as exc:
        row = ResultRow(row.id, row.category, "error", score={"value": 0.0, "reason": "error"},
                        error=f"the result could not be stored as JSON ({type(exc).__name__})",
                        duration_s=row.duration_s)
        return _dumps(row.to_json()) + "\n", row


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
        timeout: Seconds allowed per record's ``solve``, ``None`` for no limit.
        resume: Continue an existing results file written with the same configuration.
        retry_errors: With ``resume``, re-do records whose row is an error.
        overwrite: Delete an existing results file and start over.
        progress: Show a progress bar with throughput and ETA.
        console: Where the progress bar goes (default: stderr).

    Returns:
        The rows of all the task's records and what was done.

    Raises:
        ConfigError: ``concurrency`` is below 1 or ``timeout`` is not a positive number.
        ResultsExist: A results file exists and neither ``resume`` nor ``overwrite`` was given.
        ConfigChanged: ``resume`` met a file written with another configuration.
        ResultsFileError: ``resume`` met a file that is not a qwenkit results file.
        OutputUnusable: The output folder cannot be created or written.
        BenchError: The task has duplicate record ids.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1 (got {concurrency}).")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise ConfigError(f"the per-record timeout must be a positive number of seconds (got {timeout:g}).")
    out = prepare_out_dir(out_dir)
    path = out / RESULTS_FILE
    cfg = task.config()
    digest = config_hash(cfg)
    records = list(task.records())
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise BenchError(f"benchmark {task.name!r} has duplicate record ids.")

    existing: dict[str, ResultRow] = {}
    try:
        if path.exists() and overwrite:
            path.unlink()
        elif path.exists() and not resume:
            raise ResultsExist(f"{path} already exists and holds the results of an earlier run.")
        elif path.exists():
            header, existing = read_results(path)
            if header is not None and header.get("config_hash") != digest:
                old_cfg = header.get("config", {})
                changed = sorted(k for k in set(cfg) | set(old_cfg) if cfg.get(k) != old_cfg.get(k))
                raise ConfigChanged(f"cannot resume {path}: it was written with another configuration "
                                    f"(differs in: {', '.join(changed) or 'hash'}).")
            # A cut or corrupt last line (ignored by read_results) must not glue itself to the next record.
            repair_tail(path, is_valid_line)
            if header is None:  # no complete line: nothing to keep
                path.unlink()
        f = path.open("a", encoding="utf-8")
    except OSError as exc:
        raise OutputUnusable(f"cannot write {path}: {exc.strerror or exc}.") from exc

    todo = [r for r in records
            if r.id not in existing or (retry_errors and existing[r.id].status == "error")]
    reused = len(records) - len(todo)
    rows = dict(existing)
    start = time.perf_counter()
    with f:
        if f.tell() == 0:
            header_obj = {"type": "header", "format_version": FORMAT_VERSION, "bench": task.name,
                          "config_hash": digest, "config": cfg,
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            f.write(_dumps(header_obj) + "\n")
            f.flush()

        bar = _progress(console or Console(stderr=True)) if progress else None
        bar_task = bar.add_task(task.name, total=len(todo), errors=0) if bar else None
        errors = 0
        # ``concurrency`` workers share one iterator (each record is taken once, in order), rather than
        # one Task per record behind a semaphore: no thousands of parked Tasks, no semaphore hand-offs.
        pending = iter(todo)

        async def worker() -> None:
            nonlocal errors
            for record in pending:
                text, row = _row_line(await _one(task, record, timeout))
                # Flushed at once, so a killed run keeps every finished record (the OS has the line).
                f.write(text)
                f.flush()
                rows[row.id] = row
                errors += row.status == "error"
                if bar is not None and bar_task is not None:
                    bar.update(bar_task, advance=1, errors=errors)

        if isinstance(task, PreparedTask) and todo:
            # Shared work (a chain several records start from) may take longer than one record is allowed.
            await task.prepare(todo)
        if bar is not None:
            bar.start()
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(concurrency, len(todo))):
                    group.create_task(worker())
        finally:
            if bar is not None:
                bar.stop()
            f.flush()
            os.fsync(f.fileno())
    return RunOutcome(
        rows=[rows[i] for i in ids if i in rows], done_now=len(todo), reused=reused,
        elapsed_s=time.perf_counter() - start, config=cfg, config_hash=digest,
    )


__all__ = [
    "FORMAT_VERSION", "RESULTS_FILE", "BenchRecord", "BenchTask", "ResultRow", "RunOutcome", "config_hash",
    "prepare_out_dir", "read_results", "run_bench",
]
