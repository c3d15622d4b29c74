"""PNG checks and the outputs folder's size budget (no kernel needed)."""

from __future__ import annotations

import os
from pathlib import Path

from qwenkit.sandbox.images import OutputsBudget, png_problem
from tests.sandbox.test_output import png_bytes


def test_png_problem_accepts_real_images_only() -> None:
    assert png_problem(png_bytes(10, 10), max_pixels=1000) is None
    assert png_problem(b"GIF89a" + b"\0" * 100, max_pixels=1000) == "not PNG data"
    assert png_problem(b"\x89PNG\r\n\x1a\n" + b"\xff" * 1000, max_pixels=1000) is not None
    assert png_problem(png_bytes(10, 10), max_pixels=99) is not None  # 100 pixels
    raw = bytearray(png_bytes(10, 10))
    raw[40] ^= 0xFF  # a flipped byte inside a chunk: the CRC check fails
    assert png_problem(bytes(raw), max_pixels=1000) is not None


def _file(path: Path, size: int, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


def test_outputs_budget_removes_oldest_files_first(tmp_path: Path) -> None:
    old = _file(tmp_path / "conv-a" / "fig-1.png", 400, 1_000)
    mid = _file(tmp_path / "conv-b" / "fig-1.png", 400, 2_000)
    new = _file(tmp_path / "conv-a" / "fig-2.png", 400, 3_000)
    budget = OutputsBudget(tmp_path, max_bytes=1_000)
    assert budget.make_room(100)  # 1,300 would fit? no: 1,200 + 100 > 1,000, so the oldest goes
    assert not old.exists() and mid.exists() and new.exists()
    assert budget.make_room(600)  # needs both remaining files gone but the newest? 800 + 600 > 1,000
    assert not mid.exists() and new.exists()
    assert not budget.make_room(1_001) and new.exists()  # one file over the whole budget: refused, nothing deleted
