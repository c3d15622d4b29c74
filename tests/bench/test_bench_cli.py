"""``qwenkit bench``: configuration errors are one line with exit code 2; whole runs against local servers."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenkit.bench.bfcl.data import CATEGORIES, fetch
from qwenkit.bench.errors import BadData
from qwenkit.bench.perf_runner import StubServerProcess
from qwenkit.cli import main


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``qwenkit ...`` in-process through `qwenkit.cli.main`.

    Returns:
        The exit code, and: on exit code 2 the error message (asserted to be the one line printed), else
        everything printed on stderr.
    """
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refused a flag (one line, exit 2)
            code = exc.code if isinstance(exc.code, int) else 1
    return code, one_error_line(err.getvalue()) if code == 2 else err.getvalue()


def one_error_line(text: str) -> str:
    """The message of a ``qwenkit: error:`` line, asserting it is the only output and no traceback."""
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("qwenkit: error: "), text
    return lines[0].removeprefix("qwenkit: error: ")


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    with StubServerProcess(0.0) as server:
        yield server.base_url


def test_unknown_category_is_one_clear_line(bfcl_dir: Path, tmp_path: Path, stub: str) -> None:
    code, msg = run_cli(["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(bfcl_dir),
                         "--categories", "simple_python,live_foo", "--out", str(tmp_path)])
    assert code == 2 and "unknown BFCL category 'live_foo'" in msg and "\n" not in msg


def test_missing_data_is_a_config_error(tmp_path: Path, stub: str) -> None:
    code, msg = run_cli(["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir",
                         str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert code == 2 and "qwenkit bench fetch bfcl" in msg
    (tmp_path / "empty").mkdir()
    code, msg = run_cli(["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir",
                         str(tmp_path / "empty"), "--out", str(tmp_path)])
    assert code == 2 and "missing BFCL data file" in msg


def test_no_server_is_a_config_error(bfcl_dir: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, msg = run_cli(["bench", "bfcl", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m",
                         "--data-dir", str(bfcl_dir), "--out", str(tmp_path), "--no-progress"])
    assert code == 2 and "cannot reach the model server" in msg
    code, msg = run_cli(["bench", "bfcl", "--model", "m", "--data-dir", str(bfcl_dir), "--base-url", ""])
    assert code == 2 and "--base-url" in msg


def test_unknown_model_is_a_config_error(bfcl_dir: Path, tmp_path: Path, stub: str) -> None:
    code, msg = run_cli(["bench", "bfcl", "--base-url", stub, "--model", "other", "--data-dir", str(bfcl_dir),
                         "--out", str(tmp_path), "--no-progress"])
    assert code == 2 and "has no model 'other'" in msg and "stub" in msg


def test_whole_bfcl_run_against_a_stub_server_then_resume(bfcl_dir: Path, tmp_path: Path, stub: str) -> None:
    argv = ["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(bfcl_dir), "--out",
            str(tmp_path), "--limit", "2", "--no-progress", "--format", "nous"]
    assert run_cli(argv) == (0, "")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["records"] == 10
    # The stub answers "pong": no call, so only irrelevance passes.
    assert report["scores"] == {c: (1.0 if c == "irrelevance" else 0.0) for c in CATEGORIES}
    assert report["reasons"]["simple_python"] == {"wrong_count": 2}
    assert (tmp_path / "scores.png").stat().st_size > 1000
    assert "| irrelevance | 100.00 | 2 | 0 |" in (tmp_path / "report.md").read_text()
    code, msg = run_cli(argv)
    assert code == 2 and "--resume" in msg
    assert run_cli([*argv, "--resume"]) == (0, "")
    assert json.loads((tmp_path / "report.json").read_text())["reused_from_file"] == 10
    code, msg = run_cli([*argv, "--resume", "--seed", "7"])
    assert code == 2 and "another configuration" in msg and "sampling" in msg


def test_ids_run_only_the_named_records(bfcl_dir: Path, tmp_path: Path, stub: str) -> None:
    argv = ["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(bfcl_dir), "--no-progress",
            "--categories", "simple_python,irrelevance", "--format", "nous"]
    assert run_cli([*argv, "--out", str(tmp_path / "a"), "--ids", "simple_python_3, irrelevance_1"]) == (0, "")
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["records"] == 2 and report["config"]["ids"] == ["irrelevance_1", "simple_python_3"]
    code, msg = run_cli([*argv, "--out", str(tmp_path / "b"), "--ids", "simple_python_3,simple_python_99999,x"])
    assert code == 2 and msg == ("--ids: no record simple_python_99999, x in the categories simple_python, "
                                 "irrelevance.")
    code, msg = run_cli([*argv, "--out", str(tmp_path / "c"), "--ids", " , "])
    assert code == 2 and msg == "--ids names no record."


def test_auto_format_falls_back_to_nous_where_the_server_shows_no_template(
    bfcl_dir: Path, tmp_path: Path, stub: str,
) -> None:
    argv = ["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(bfcl_dir), "--out",
            str(tmp_path), "--limit", "1", "--categories", "simple_python", "--no-progress", "--format", "auto"]
    code, err = run_cli(argv)
    assert code == 0 and err.startswith("prompt format: nous (") and len(err.splitlines()) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["format"] == "nous"  # the run records the concrete format, so a resume matches it


def test_tooluse_run_against_a_stub_server(bfcl_dir: Path, tmp_path: Path, stub: str) -> None:
    argv = ["bench", "tooluse", "--base-url", stub, "--model", "stub", "--data-dir", str(bfcl_dir), "--out",
            str(tmp_path), "--limit", "2", "--no-progress", "--tokenizer", "whitespace"]
    code, err = run_cli(argv)
    assert code == 0 and err == "note: ROUGE-L tokenised by whitespace, not by Qwen's tokenizer.\n"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["scores"]["tool_selection_accuracy"] == 0.0
    assert report["scores"]["false_positive_rate"] == 0.0
    assert any("tokenizer: whitespace" in n for n in report["notes"])


def test_fetch_extracts_the_data_from_a_bfcl_wheel(bfcl_dir: Path, tmp_path: Path) -> None:
    wheel = tmp_path / "bfcl_eval-2026.3.23-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for c in CATEGORIES:
            z.write(bfcl_dir / f"BFCL_v4_{c}.json", f"bfcl_eval/data/BFCL_v4_{c}.json")
            if c != "irrelevance":
                z.write(bfcl_dir / "possible_answer" / f"BFCL_v4_{c}.json",
                        f"bfcl_eval/data/possible_answer/BFCL_v4_{c}.json")
        z.writestr("bfcl_eval/__init__.py", "")
    dest = tmp_path / "cache"
    code, _ = run_cli(["bench", "fetch", "bfcl", "--wheel", str(wheel), "--dest", str(dest)])
    assert code == 0
    for c in CATEGORIES:
        assert (dest / f"BFCL_v4_{c}.json").read_bytes() == (bfcl_dir / f"BFCL_v4_{c}.json").read_bytes()
    incomplete = tmp_path / "bad.whl"
    with zipfile.ZipFile(incomplete, "w") as z:
        z.writestr("bfcl_eval/__init__.py", "")
    with pytest.raises(BadData, match="lacks"):
        fetch(tmp_path / "other", wheel=incomplete)


@pytest.mark.llama
def test_three_bfcl_records_against_a_real_llama_server(
    bfcl_dir: Path, tmp_path: Path, llama_server: tuple[str, str],
) -> None:
    base_url, model = llama_server
    code, msg = run_cli(["bench", "bfcl", "--base-url", base_url, "--model", model, "--data-dir", str(bfcl_dir),
                         "--categories", "simple_python", "--limit", "3", "--format", "nous", "--concurrency", "1",
                         "--max-tokens", "256", "--out", str(tmp_path), "--no-progress"])
    assert (code, msg) == (0, "")
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()[1:]]
    assert [r["id"] for r in rows] == ["simple_python_0", "simple_python_1", "simple_python_2"]
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    report = json.loads((tmp_path / "report.json").read_text())
    assert 0.0 <= report["scores"]["simple_python"] <= 1.0
