"""Output capping and the observation text (no kernel needed)."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from qwenkit.sandbox.output import (
    CappedText,
    CellCollector,
    collapse_carriage_returns,
    format_observation,
    short_traceback,
    strip_ansi,
)
from qwenkit.sandbox.result import ExecutionError, ExecutionResult

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def test_capped_text_keeps_head_and_tail_with_bounded_memory() -> None:
    c = CappedText(10)
    for i in range(1000):
        c.append(f"{i:04d}")
    assert c.total == 4000 and c.dropped == 3990 and c.truncated
    text = c.text()
    assert text.startswith("00000") and text.endswith("0999") and "3990 characters dropped" in text
    assert sum(len(t) for t in c._tail) == 5


def test_capped_text_under_limit_is_untouched() -> None:
    c = CappedText(100)
    c.append("hello\n")
    c.append("world\n")
    assert c.text() == "hello\nworld\n" and not c.truncated


def test_collector_sorts_streams_results_images_and_errors() -> None:
    saved: list[bytes] = []

    def save(png: bytes) -> str:
        saved.append(png)
        return f"/w/fig-{len(saved)}.png"

    c = CellCollector(max_output_chars=1000, max_images=1, save_image=save)
    c.feed("stream", {"name": "stdout", "text": "a\n"})
    c.feed("stream", {"name": "stderr", "text": "warn\n"})
    png = base64.b64encode(PNG).decode()
    c.feed("display_data", {"data": {"image/png": png, "text/plain": "<Figure>"}})
    c.feed("display_data", {"data": {"image/png": png}})  # over the per-cell image limit
    c.feed("display_data", {"data": {"image/png": base64.b64encode(b"not a png").decode()}})
    c.feed("display_data", {"data": {"text/plain": "shown"}})
    c.feed("execute_result", {"data": {"text/plain": "42"}})
    tb = ["\x1b[31mTraceback\x1b[0m", "ValueError: bad"]
    c.feed("error", {"ename": "ValueError", "evalue": "bad", "traceback": tb})
    f = c.fields()
    assert f["stdout"] == "a\nshown\n" and f["stderr"] == "warn\n" and f["result"] == "42"
    assert f["images"] == ["/w/fig-1.png"] and saved == [PNG] and f["dropped_images"] == 1 and f["truncated"]
    assert f["error"] == ExecutionError(name="ValueError", value="bad", traceback="Traceback\nValueError: bad")


def test_collector_counts_kernel_side_drops_even_when_marker_is_capped_away() -> None:
    c = CellCollector(max_output_chars=20, max_images=0, save_image=lambda b: "")
    marker = "\n[... 12345 characters dropped in the kernel ...]\n"
    c.feed("stream", {"name": "stdout", "text": "x" * 500 + marker + "y" * 500})
    f = c.fields()
    assert f["dropped_chars"] >= 12345 + 900 and f["truncated"]


def test_observation_sections_and_notes() -> None:
    r = ExecutionResult(
        stdout="progress 10%\rprogress 100%\ndone\n", stderr="careful\n", result="3",
        images=["/tmp/s/fig-1.png"], error=ExecutionError(name="KeyboardInterrupt", value="", traceback="tb"),
        timed_out=True, interrupted=True, timeout_s=30, dropped_chars=7, truncated=True,
    )
    obs = format_observation(r)
    assert obs.index("stdout:") < obs.index("stderr:") < obs.index("Out:") < obs.index("error:")
    assert "progress 100%\ndone" in obs and "progress 10%" not in obs
    assert "![fig-1](/tmp/s/fig-1.png)" in obs
    assert "7 characters dropped" in obs and "timed out after 30 s and was interrupted" in obs
    assert format_observation(ExecutionResult()) == "Finished execution (no output)."
    died = format_observation(ExecutionResult(kernel_died=True, exit_code=137))
    assert "kernel died" in died and "exit code 137" in died
    lost = format_observation(ExecutionResult(result="2", previous_state_lost="the previous kernel had exited"))
    assert lost.startswith("[Note: the previous kernel had exited; this cell ran in a new kernel")


def test_helpers() -> None:
    assert strip_ansi("\x1b[0;31mred\x1b[0m") == "red"
    assert collapse_carriage_returns("a\rb\nc") == "b\nc"
    tb = "\n".join(f"frame {i}" for i in range(1000))
    short = short_traceback(tb, 100)
    assert short.startswith("[... earlier frames dropped ...]") and short.endswith("frame 999") and len(short) < 140


@given(st.lists(st.text(max_size=50), max_size=60), st.integers(min_value=0, max_value=120))
def test_capped_text_is_exact_head_and_tail_of_the_whole(chunks: list[str], limit: int) -> None:
    c = CappedText(limit)
    for chunk in chunks:
        c.append(chunk)
    whole = "".join(chunks)
    head, tail = "".join(c._head), "".join(c._tail)
    assert whole.startswith(head) and whole.endswith(tail)
    assert len(head) + len(tail) <= limit and c.dropped == len(whole) - len(head) - len(tail)
    assert c.text() == whole if not c.dropped else c.text().startswith(head)
