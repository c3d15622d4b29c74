"""Output capping and the observation text (no kernel needed)."""

from __future__ import annotations

import base64
import io
import os

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from qwenkit.sandbox.output import CellCollector, OutputCaps
from qwenkit.sandbox.result import ExecutionError, ExecutionResult, format_observation
from qwenkit.sandbox.text import CappedText, collapse_carriage_returns, short_traceback, strip_ansi


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A real PNG image."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


PNG = png_bytes()


def test_capped_text_keeps_head_and_tail_with_bounded_memory() -> None:
    c = CappedText(10)
    for i in range(1000):
        c.append(f"{i:04d}")
    assert c.total == 4000 and c.dropped == 3990 and c.truncated
    text = c.text()
    assert text.startswith("00000") and text.endswith("0999") and "3990 characters dropped" in text
    assert len(c.tail) == 5


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

    c = CellCollector(OutputCaps(max_output_chars=1000, max_images=1), save)
    c.feed("stream", {"name": "stdout", "text": "a\n"})
    c.feed("stream", {"name": "stderr", "text": "warn\n"})
    png = base64.b64encode(PNG).decode()
    c.feed("display_data", {"data": {"image/png": png, "text/plain": "<Figure>"}})
    c.feed("display_data", {"data": {"image/png": base64.b64encode(b"not a png").decode()}})
    c.feed("display_data", {"data": {"image/png": png}})  # over the per-cell image limit
    c.feed("display_data", {"data": {"text/plain": "shown"}})
    c.feed("execute_result", {"data": {"text/plain": "42"}})
    tb = ["\x1b[31mTraceback\x1b[0m", "ValueError: bad"]
    c.feed("error", {"ename": "ValueError", "evalue": "bad", "traceback": tb})
    f = c.fields()
    assert f["stdout"] == "a\nshown\n" and f["stderr"] == "warn\n" and f["result"] == "42"
    assert f["images"] == ["/w/fig-1.png"] and saved == [PNG] and f["dropped_images"] == 1 and f["truncated"]
    assert f["invalid_images"] == 1
    assert f["error"] == ExecutionError(name="ValueError", value="bad", traceback="Traceback\nValueError: bad")


def test_collector_counts_kernel_side_drops_even_when_marker_is_capped_away() -> None:
    c = CellCollector(OutputCaps(max_output_chars=20, max_images=0), lambda b: "")
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
    assert "7 characters dropped" in obs and "interrupted after 30 s (its time limit)" in obs
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
    head, tail = c.head, c.tail
    assert whole.startswith(head) and whole.endswith(tail)
    assert len(head) + len(tail) <= limit and c.dropped == len(whole) - len(head) - len(tail)
    assert c.text() == whole if not c.dropped else c.text().startswith(head)


# ----------------------------------------------------------------------- hostile kernel messages
def test_every_field_of_every_message_is_capped() -> None:
    c = CellCollector(OutputCaps(max_output_chars=1000), lambda b: "/w/x.png")
    huge = "v" * 30_000_000
    c.feed("stream", {"name": "stdout", "text": huge})
    c.feed("stream", {"name": "x" * 1_000_000, "text": "s" * 5_000_000})
    c.feed("display_data", {"data": {"text/plain": huge, "text/html": huge, "application/x-junk": huge}})
    c.feed("execute_result", {"data": {"text/plain": huge}, "metadata": {"k": huge}})
    c.feed("error", {"ename": "E" * 1_000_000, "evalue": huge, "traceback": []})
    f = c.fields()
    assert len(f["stdout"]) < 1200 and len(f["result"]) < 1200
    err = f["error"]
    assert len(err.name) < 300 and len(err.value) < 2200 and err.traceback == ""
    obs = format_observation(ExecutionResult(**f))
    assert len(obs) < 10_000 and f["dropped_chars"] > 60_000_000 and "characters dropped" in obs


def test_huge_traceback_lines_and_many_lines_keep_the_end() -> None:
    c = CellCollector(OutputCaps(), lambda b: "")
    lines = ["frame\n"] * 1_000_000 + ["x" * 10_000_000, "ValueError: the end"]
    c.feed("error", {"ename": "ValueError", "evalue": "the end", "traceback": lines})
    tb = c.fields()["error"].traceback
    assert tb.endswith("ValueError: the end") and len(tb) <= 20_100


def test_fields_of_the_wrong_type_are_ignored_not_raised() -> None:
    c = CellCollector(OutputCaps(max_output_chars=100), lambda b: "")
    c.feed("stream", ["not", "a", "dict"])
    c.feed("stream", {"name": "stdout", "text": {"nested": 1}})
    c.feed("display_data", {"data": ["x"]})
    c.feed("display_data", {"data": {"image/png": 12, "text/plain": 3}})
    c.feed("error", {"ename": None, "evalue": ["a"], "traceback": "a string, not a list"})
    c.feed("stream", {"name": "stdout", "text": "[... " + "9" * 5000 + " characters dropped in the kernel ...]"})
    f = c.fields()
    assert f["error"] == ExecutionError(name="Error", value="<class 'list'>", traceback="")
    assert "characters dropped in the kernel" in f["stdout"] or f["dropped_chars"] > 0


def test_lone_surrogates_are_replaced_and_noted() -> None:
    c = CellCollector(OutputCaps(), lambda b: "")
    c.feed("stream", {"name": "stdout", "text": "a\ud800b\n"})
    c.feed("error", {"ename": "E\udfff", "evalue": "\ud83d", "traceback": ["tb \ud800"]})
    f = c.fields()
    assert f["stdout"] == "a\ufffdb\n" and f["error"].name == "E\ufffd" and f["replaced_chars"]
    obs = format_observation(ExecutionResult(**f))
    obs.encode("utf-8")  # would raise on a lone surrogate
    assert "lone surrogates" in obs


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_images_are_capped_in_count_bytes_and_checked_to_be_real() -> None:
    saved: list[bytes] = []

    def save(raw: bytes) -> str:
        saved.append(raw)
        return f"/w/fig-{len(saved)}.png"

    noisy = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    big = out.getvalue()  # a real image over the per-image byte cap below (random pixels do not compress)
    caps = OutputCaps(max_images=3, max_image_bytes=100_000, max_cell_image_bytes=2 * len(PNG) + 10,
                      max_image_pixels=100_000)
    c = CellCollector(caps, save)
    c.feed("display_data", {"data": {"image/png": _b64(b"\x89PNG\r\n\x1a\n" + b"\0" * 5_000)}})  # junk
    c.feed("display_data", {"data": {"image/png": _b64(png_bytes(200, 200)[:-30])}})  # cut short
    c.feed("display_data", {"data": {"image/png": _b64(png_bytes(400, 400))}})  # too many pixels
    c.feed("display_data", {"data": {"image/png": _b64(big)}})  # too many bytes
    c.feed("display_data", {"data": {"image/png": "A" * 50_000_000}})  # refused before decoding
    for _ in range(3):
        c.feed("display_data", {"data": {"image/png": _b64(PNG)}})  # the third is over the cell's bytes
    f = c.fields()
    assert saved == [PNG, PNG] and f["images"] == ["/w/fig-1.png", "/w/fig-2.png"]
    assert f["invalid_images"] == 3 and f["dropped_images"] == 3
    obs = format_observation(ExecutionResult(**f))
    assert "3 image output(s) were not valid PNG images" in obs and "3 more image(s) not saved" in obs


def test_an_image_the_outputs_budget_refuses_is_dropped() -> None:
    c = CellCollector(OutputCaps(), lambda raw: None)
    c.feed("display_data", {"data": {"image/png": _b64(PNG), "text/plain": "<Figure>"}})
    f = c.fields()
    assert f["images"] == [] and f["dropped_images"] == 1 and f["stdout"] == ""


def test_a_failed_reply_without_an_error_message_is_an_error() -> None:
    c = CellCollector(OutputCaps(), lambda b: "")
    c.feed("execute_reply", {"status": "error", "ename": "RuntimeError", "evalue": "meta", "traceback": []})
    assert c.fields()["error"] == ExecutionError(name="RuntimeError", value="meta")
    assert not ExecutionResult(**c.fields()).ok
    aborted = CellCollector(OutputCaps(), lambda b: "")
    aborted.feed("execute_reply", {"status": "aborted"})
    assert aborted.fields()["error"] is not None
    fine = CellCollector(OutputCaps(), lambda b: "")
    fine.feed("execute_reply", {"status": "ok"})
    assert fine.fields()["error"] is None
    both = CellCollector(OutputCaps(), lambda b: "")
    both.feed("error", {"ename": "ValueError", "evalue": "x", "traceback": ["ValueError: x"]})
    both.feed("execute_reply", {"status": "error", "ename": "ValueError", "evalue": "x"})
    assert both.fields()["error"] == ExecutionError(name="ValueError", value="x", traceback="ValueError: x")
