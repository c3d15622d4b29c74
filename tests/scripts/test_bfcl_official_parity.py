"""scripts/bfcl_official_parity.py: the official harness's files and a qwenkit results file, record by record."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bfcl_official_parity.py"


@pytest.fixture(scope="module")
def parity() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bfcl_official_parity", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verdicts_and_texts_are_compared_record_by_record(parity: ModuleType, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    official = _write(tmp_path / "result.json", [
        {"id": "simple_python_0", "result": "[f(a=1)]"},
        {"id": "simple_python_1", "result": "[g(b=2)]"},
        {"id": "simple_python_10", "result": "no call"},
    ])
    score = _write(tmp_path / "score.json", [
        {"accuracy": 0.67, "correct_count": 2, "total_count": 3},
        {"id": "simple_python_10", "valid": False, "error": ["Wrong number of functions."],
         "error_type": "simple_function_checker:wrong_count"},
    ])
    ours = _write(tmp_path / "results.jsonl", [
        {"type": "header", "config_hash": "h"},
        {"type": "result", "id": "simple_python_0", "status": "ok", "result": {"text": "[f(a=1)]"},
         "score": {"valid": True}},
        {"type": "result", "id": "simple_python_1", "status": "error", "result": None, "score": None},
        # a later row for an id wins (a --retry-errors run appends it)
        {"type": "result", "id": "simple_python_1", "status": "ok", "result": {"text": "[g(b=3)]"},
         "score": {"valid": False, "reason": "value_error", "detail": "b"}},
        {"type": "result", "id": "simple_python_10", "status": "ok", "result": {"text": "no call"},
         "score": {"valid": False, "reason": "wrong_count"}},
    ])
    assert parity.main(["--official-result", str(official), "--official-score", str(score),
                        "--qwenkit", str(ours)]) == 0
    out = capsys.readouterr().out
    assert "records compared: 3" in out
    assert "official valid:             2/3" in out and "qwenkit valid:              1/3" in out
    assert "verdicts agree:             2/3" in out and "raw text identical:         2/3" in out
    lines = out.splitlines()
    # numeric order: _10 after _1
    ids = [ln.split()[0] for ln in lines[1:4]]
    assert ids == ["simple_python_0", "simple_python_1", "simple_python_10"]
    assert any("qwenkit failed: value_error: b" in ln for ln in lines)  # only records that differ are explained
    assert not any("official failed" in ln for ln in lines)
