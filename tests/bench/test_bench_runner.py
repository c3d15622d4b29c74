"""The runner: concurrency, errors and timeouts recorded, resume after a kill re-does nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwenkit.bench.errors import ConfigChanged, ResultsExist
from qwenkit.bench.report import write_report
from qwenkit.bench.results import RESULTS_FILE, read_results
from qwenkit.bench.runner import run_bench
from qwenkit.errors import ConfigError
from tests.bench.bench_helpers import CountingTask


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / RESULTS_FILE).read_text().splitlines()]


async def test_runs_all_records_with_bounded_concurrency(tmp_path: Path) -> None:
    task = CountingTask(30, delay=0.01)
    outcome = await run_bench(task, tmp_path, concurrency=4, progress=False)
    assert sorted(task.solved) == sorted(f"r{i}" for i in range(30))
    assert task.max_in_flight == 4
    assert [r.id for r in outcome.rows] == [f"r{i}" for i in range(30)]  # record order, not finish order
    lines = _lines(tmp_path)
    assert lines[0]["type"] == "header" and lines[0]["config_hash"] == outcome.config_hash
    assert len(lines) == 31
    summary = task.summarize(outcome.rows)
    assert summary.scores == {"even": 0.0, "odd": 1.0} and summary.overall == 0.5


async def test_errors_and_timeouts_are_recorded_not_dropped(tmp_path: Path) -> None:
    task = CountingTask(6, fail={"r1"}, hang={"r3"})
    outcome = await run_bench(task, tmp_path, timeout=0.2, progress=False)
    by_id = {r.id: r for r in outcome.rows}
    assert len(by_id) == 6
    assert by_id["r1"].status == "error" and by_id["r1"].error == "RuntimeError: boom on r1"
    assert by_id["r3"].status == "error" and (by_id["r3"].error or "").startswith("Timeout")
    assert by_id["r5"].status == "ok"
    summary = task.summarize(outcome.rows)
    assert summary.scores["odd"] == pytest.approx(1 / 3)  # errored records count as failures
    assert summary.counts["odd"].errors == 2
    files = write_report(tmp_path, "counting", outcome, summary)
    report = json.loads(files.json.read_text())
    assert {e["id"] for e in report["errors"]} == {"r1", "r3"}
    assert "| odd | 33.33 | 3 | 2 |" in files.markdown.read_text()


async def test_resume_skips_finished_and_errored_records_unless_asked(tmp_path: Path) -> None:
    await run_bench(CountingTask(6, fail={"r2"}), tmp_path, progress=False)
    again = CountingTask(6)
    outcome = await run_bench(again, tmp_path, resume=True, progress=False)
    assert again.solved == [] and outcome.reused == 6 and outcome.done_now == 0
    assert {r.id: r.status for r in outcome.rows}["r2"] == "error"
    retry = CountingTask(6)
    outcome = await run_bench(retry, tmp_path, resume=True, retry_errors=True, progress=False)
    assert retry.solved == ["r2"]
    assert all(r.status == "ok" for r in outcome.rows)
    _, rows = read_results(tmp_path / RESULTS_FILE)
    assert rows["r2"].status == "ok"  # the later line wins


async def test_existing_file_needs_resume_or_overwrite(tmp_path: Path) -> None:
    await run_bench(CountingTask(2), tmp_path, progress=False)
    with pytest.raises(ResultsExist, match="already exists"):
        await run_bench(CountingTask(2), tmp_path, progress=False)
    task = CountingTask(2)
    await run_bench(task, tmp_path, overwrite=True, progress=False)
    assert len(task.solved) == 2


async def test_resume_refuses_another_configuration(tmp_path: Path) -> None:
    await run_bench(CountingTask(2), tmp_path, progress=False)
    with pytest.raises(ConfigChanged, match=r"another configuration.*salt"):
        await run_bench(CountingTask(2, salt="other"), tmp_path, resume=True, progress=False)


async def test_resume_after_cancel_and_torn_last_line(tmp_path: Path) -> None:
    task = CountingTask(20, delay=0.02)
    run = asyncio.create_task(run_bench(task, tmp_path, concurrency=2, progress=False))
    while len(_lines(tmp_path) if (tmp_path / RESULTS_FILE).exists() else []) < 6:
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    with (tmp_path / RESULTS_FILE).open("a") as f:
        f.write('{"type": "result", "id": "r19", "categ')  # a write cut short by the kill
    done = {line["id"] for line in _lines_tolerant(tmp_path) if line["type"] == "result"}
    again = CountingTask(20)
    outcome = await run_bench(again, tmp_path, resume=True, progress=False)
    assert set(again.solved) == {f"r{i}" for i in range(20)} - done
    assert not set(again.solved) & done
    assert len(outcome.rows) == 20 and len(_lines(tmp_path)) == 21


def _lines_tolerant(path: Path) -> list[dict]:
    out = []
    for line in (path / RESULTS_FILE).read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            out.append(json.loads(line))
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
async def test_resume_after_sigkill_redoes_nothing(tmp_path: Path) -> None:
    script = Path(__file__).with_name("_kill_target.py")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            path = tmp_path / RESULTS_FILE
            if path.exists() and path.read_text().count("\n") >= 8:
                break
            await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = {line["id"] for line in _lines_tolerant(tmp_path) if line["type"] == "result"}
    assert 7 <= len(done) < 40
    again = CountingTask(40, delay=0.05)
    outcome = await run_bench(again, tmp_path, concurrency=8, resume=True, progress=False)
    assert set(again.solved) == {f"r{i}" for i in range(40)} - done
    assert outcome.reused == len(done) and len(outcome.rows) == 40
    finished = CountingTask(40, delay=0.05)
    await run_bench(finished, tmp_path, resume=True, progress=False)
    assert finished.solved == []


async def test_progress_bar_renders(tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    await run_bench(CountingTask(5), tmp_path, console=Console(file=buf, width=120, force_terminal=False))
    assert "rec/s" in buf.getvalue() and "5/5" in buf.getvalue()


async def test_bad_concurrency_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        await run_bench(CountingTask(1), tmp_path, concurrency=0, progress=False)


async def test_records_start_in_order_and_a_stuck_one_does_not_hold_the_others(tmp_path: Path) -> None:
    task = CountingTask(10, delay=0.01, hang={"r0"})
    outcome = await run_bench(task, tmp_path, concurrency=2, timeout=0.5, progress=False)
    assert task.solved == [f"r{i}" for i in range(10)]  # taken in record order, each once
    assert task.max_in_flight == 2
    finished = [line["id"] for line in _lines(tmp_path)[1:]]
    assert finished[-1] == "r0" and sorted(finished) == sorted(task.solved)  # the others did not wait for r0
    assert [r.status for r in outcome.rows] == ["error"] + ["ok"] * 9


async def test_fewer_records_than_concurrency(tmp_path: Path) -> None:
    task = CountingTask(3)
    outcome = await run_bench(task, tmp_path, concurrency=64, progress=False)
    assert sorted(task.solved) == ["r0", "r1", "r2"] and outcome.done_now == 3


class _SharedWorkTask(CountingTask):
    """Records that all start from one shared piece of work, slower than one record's timeout."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.prepared: list[list[str]] = []

    async def prepare(self, records) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.5)
        self.prepared.append([r.id for r in records])


async def test_shared_work_runs_once_before_the_records_outside_their_timeouts(tmp_path: Path) -> None:
    await run_bench(CountingTask(4, fail={"r1"}), tmp_path, progress=False)
    task = _SharedWorkTask(4)
    outcome = await run_bench(task, tmp_path, timeout=0.3, resume=True, retry_errors=True, progress=False)
    assert task.prepared == [["r1"]]  # only the records this run does
    assert all(r.status == "ok" for r in outcome.rows)
