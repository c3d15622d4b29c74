"""A model that answers with the gold calls scores 100% on every BFCL category, in every prompt format."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenkit.bench.bfcl.data import CATEGORIES
from qwenkit.bench.bfcl.task import BfclTask
from qwenkit.bench.errors import UnknownRecords
from qwenkit.bench.report import write_report
from qwenkit.bench.runner import run_bench
from qwenkit.testing import FunctionModel
from tests.bench.bench_helpers import scripted_bfcl_model


def _task(bfcl_dir: Path, fmt: str, limit: int | None) -> BfclTask:
    placeholder = FunctionModel(lambda r: "", name="gold")
    return BfclTask(placeholder, fmt, bfcl_dir, CATEGORIES, limit=limit)


async def _run_gold(bfcl_dir: Path, tmp_path: Path, fmt: str, limit: int | None) -> None:
    task = _task(bfcl_dir, fmt, limit)
    items = [r.data for r in task.records()]
    assert len(items) == (1240 if limit is None else 5 * limit)
    task.model = scripted_bfcl_model(task, items, fmt)
    outcome = await run_bench(task, tmp_path, concurrency=32, progress=False)
    summary = task.summarize(outcome.rows)
    failures = [(r.id, r.score.get("reason"), r.score.get("detail"), r.error) for r in outcome.rows
                if r.score.get("value") != 1.0]
    assert failures == []
    assert summary.scores == {c: 1.0 for c in CATEGORIES}
    # Five of the v4 categories: the overall is BFCL's arithmetic with the rest counted as 0, marked partial.
    assert summary.overall_name.endswith("(PARTIAL)")
    assert summary.overall is not None and 0 < summary.overall < 1
    files = write_report(tmp_path, "bfcl", outcome, summary)
    assert files.chart.stat().st_size > 0


async def test_gold_scores_100_on_full_data_nous(bfcl_dir: Path, tmp_path: Path) -> None:
    await _run_gold(bfcl_dir, tmp_path, "nous", limit=None)


@pytest.mark.parametrize("fmt", ["qwen", "react", "native"])
async def test_gold_scores_100_on_full_data_in_other_formats(bfcl_dir: Path, tmp_path: Path, fmt: str) -> None:
    await _run_gold(bfcl_dir, tmp_path, fmt, limit=None)


async def test_limit_takes_the_first_records_of_each_category(bfcl_dir: Path, tmp_path: Path) -> None:
    await _run_gold(bfcl_dir, tmp_path, "nous", limit=7)


def test_ids_the_data_lacks_are_an_error_not_an_empty_run(bfcl_dir: Path) -> None:
    task = BfclTask(FunctionModel(lambda r: ""), "nous", bfcl_dir, ["simple_python"], ids=["simple_python_1", "nope"])
    with pytest.raises(UnknownRecords, match=r"^no record nope in the categories simple_python\.$"):
        task.records()
    # Ids the limit leaves out are no error: the limit applies to the records the ids select.
    ids = ["simple_python_1", "simple_python_2", "simple_python_3"]
    task = BfclTask(FunctionModel(lambda r: ""), "nous", bfcl_dir, ["simple_python"], ids=ids, limit=2)
    assert [r.id for r in task.records()] == ids[:2]


async def test_dotted_names_round_trip_every_format(bfcl_dir: Path, tmp_path: Path) -> None:
    for fmt in ("nous", "qwen", "react", "native"):
        ids = ["simple_python_1", "simple_python_2"]  # math.factorial, math.hypot
        task = BfclTask(FunctionModel(lambda r: ""), fmt, bfcl_dir, ["simple_python"], ids=ids)
        items = [r.data for r in task.records()]
        assert {i.functions[0]["name"] for i in items} == {"math.factorial", "math.hypot"}
        task.model = scripted_bfcl_model(task, items, fmt)
        outcome = await run_bench(task, tmp_path / fmt, progress=False)
        assert [c["name"] for r in outcome.rows for c in r.result["calls"]] == ["math.factorial", "math.hypot"]
        assert all(r.score["valid"] for r in outcome.rows)
