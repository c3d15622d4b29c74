"""A real end-to-end multi-turn run: the embedded Qwen GGUF behind llama.cpp's server, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit.bench.results import read_results
from qwenkit.cli import main
from tests.bench.bfcl.helpers import full_data_dir


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.timeout(3600)  # a 0.5B model on a CPU: minutes per conversation
def test_a_multi_turn_entry_against_a_llama_cpp_server(llama_server: tuple[str, str], tmp_path: Path) -> None:
    # One entry in BFCL's prompt mode (the mode checked record for record against the official harness). The
    # first request reads the whole of its classes' function docs: multi_turn_base_0 (file system and Twitter)
    # is 7,500 tokens, two minutes at ~73 tokens/s here; multi_turn_base_100 (one class, TradingBot) about half.
    # The FC formats run the same Agent path and are covered against all 800 entries by the gold replays
    # (test_multi_turn.py).
    mode = "prompt"
    base_url, model = llama_server
    data_dir = full_data_dir()
    argv = ["bench", "bfcl", "--base-url", base_url, "--model", model, "--data-dir", str(data_dir),
            "--categories", "multi_turn_base", "--ids", "multi_turn_base_100", "--mode", mode, "--max-tokens", "192",
            "--concurrency", "1", "--timeout", "1800", "--request-timeout", "600", "--out", str(tmp_path),
            "--no-progress"]
    assert main(argv) == 0
    _, rows = read_results(tmp_path / "results.jsonl")
    assert set(rows) == {"multi_turn_base_100"}  # one entry: a 0.5B model on 2 CPU cores takes a minute or more
    for row in rows.values():
        assert row.status == "ok", row.error
        turns = row.result["turns"]
        assert turns and all(step["format"] == ("pythonic" if mode == "prompt" else "nous")
                             for turn in turns for step in turn["steps"])
        assert row.score["reason"] == "ok" or row.score["reason"].startswith("multi_turn:")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["mode"] == mode and "PARTIAL" in report["overall"]["name"]
    assert "Most frequent failure reasons" in (tmp_path / "report.md").read_text() or all(
        r.score["valid"] for r in rows.values())
