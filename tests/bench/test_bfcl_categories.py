"""BFCL v4 category names, groups, the leaderboard arithmetic, and the CLI's one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenkit.bench.bfcl.categories import (
    AGENTIC,
    LIVE,
    MEMORY_RUNNABLE,
    MULTI_TURN,
    NON_LIVE,
    RUNNABLE,
    SIZES,
    resolve_categories,
    v4_scores,
)
from qwenkit.cli import main
from qwenkit.errors import ConfigError


def test_groups_and_single_names_expand_in_report_order() -> None:
    assert resolve_categories(["all"]) == list(RUNNABLE)
    assert resolve_categories(["multi_turn"]) == list(MULTI_TURN)
    assert resolve_categories(["live", "simple_java"]) == ["simple_java", *LIVE]
    assert resolve_categories(["single_turn"]) == [*NON_LIVE, *LIVE]
    assert resolve_categories(["irrelevance", " irrelevance "]) == ["irrelevance"]


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_categories(["simple_pyhton"])
    text = str(err.value)
    assert "simple_pyhton" in text and "multi_turn_base" in text and "non_live" in text and "\n" not in text


@pytest.mark.parametrize(
    "name", [n for n in (*AGENTIC, "web_search", "memory", "agentic") if n not in MEMORY_RUNNABLE])
def test_agentic_categories_that_cannot_run_offline_are_refused_with_their_reason(name: str) -> None:
    with pytest.raises(ConfigError, match=r"cannot run|needs the network"):
        resolve_categories([name])


def test_memory_kv_and_rec_sum_run() -> None:
    assert resolve_categories(list(MEMORY_RUNNABLE)) == list(MEMORY_RUNNABLE)


def test_full_marks_on_everything_runnable_is_a_partial_overall() -> None:
    v4 = v4_scores(dict.fromkeys(RUNNABLE, 1.0))
    assert v4.groups["non_live"].accuracy == 1.0 and v4.groups["multi_turn"].accuracy == 1.0
    # agentic = mean of web_search and memory; memory = mean of kv, vector, rec_sum: 2 of 3 memory sets run
    assert v4.groups["agentic"].accuracy == pytest.approx(1 / 3)
    assert v4.overall.accuracy == pytest.approx(0.6 + 0.4 / 3)  # BFCL counts what did not run as 0
    assert set(v4.overall.missing) == {"web_search_base", "web_search_no_snippet", "memory_vector"}


def test_group_arithmetic_follows_bfcl() -> None:
    scores = {"simple_python": 0.9, "simple_java": 0.6, "simple_javascript": 0.3, "multiple": 0.5, "parallel": 0.5,
              "parallel_multiple": 0.5, "live_simple": 1.0, "live_multiple": 0.0, "live_parallel": 0.0,
              "live_parallel_multiple": 0.0, "irrelevance": 0.8, "live_irrelevance": 0.4}
    v4 = v4_scores(scores)
    # non-live: unweighted mean of (mean of the three simple), multiple, parallel, parallel_multiple
    assert v4.groups["non_live"].accuracy == pytest.approx((0.6 + 0.5 + 0.5 + 0.5) / 4)
    # live: weighted by entries (258 live_simple out of 258 + 1053 + 16 + 24)
    assert v4.groups["live"].accuracy == pytest.approx(258 / (258 + 1053 + 16 + 24))
    assert v4.groups["irrelevance"].accuracy == pytest.approx(0.6)
    expected = 0.1 * v4.groups["non_live"].accuracy + 0.1 * v4.groups["live"].accuracy + 0.1 * 0.6
    assert v4.overall.accuracy == pytest.approx(expected)
    assert "multi_turn_base" in v4.overall.missing and "simple_python" not in v4.overall.missing
    assert SIZES["live_multiple"] == 1053


def test_cli_unknown_category_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", "bfcl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--categories", "nope",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nope" in err and "multi_turn" in err


def test_cli_agentic_category_is_refused_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", "bfcl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--categories",
                 "web_search_base", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "SerpAPI" in err


def test_cli_missing_wheel_says_how_to_fetch(capsys: pytest.CaptureFixture[str], bfcl_dir: Path,
                                             tmp_path: Path) -> None:
    # The shared data folder holds the Python categories only, not the bfcl-eval package.
    code = main(["bench", "bfcl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--categories",
                 "multi_turn_base", "--data-dir", str(bfcl_dir), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "qwenkit bench fetch bfcl" in err


def test_cli_wheel_of_another_version_says_how_to_fetch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pkg = tmp_path / "data" / "package"
    (pkg / "bfcl_eval").mkdir(parents=True)
    (pkg / "bfcl_eval" / "__init__.py").write_text("")
    (pkg / "bfcl_eval-2025.1.1.dist-info").mkdir()
    (pkg / "bfcl_eval-2025.1.1.dist-info" / "METADATA").write_text("Name: bfcl-eval\nVersion: 2025.1.1\n")
    code = main(["bench", "bfcl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--categories",
                 "simple_java", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "qwenkit bench fetch bfcl" in err and "2025.1.1" in err


def test_cli_prompt_mode_refuses_another_format(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", "bfcl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--mode", "prompt",
                 "--format", "nous", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--mode prompt" in err
