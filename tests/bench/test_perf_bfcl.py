"""``python -m qwenkit.bench.perf bfcl``: the gold replay scores every entry valid, and the figures add up."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qwenkit.bench.bfcl.categories import MULTI_TURN
from qwenkit.bench.perf import main
from qwenkit.bench.perf_bfcl import ACTIVITIES, OUTSIDE, TAG, planned, stream_body
from qwenkit.llm._openai.reply import StreamAssembler
from tests.bench.bfcl.helpers import full_data_dir


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    data_dir = full_data_dir()
    assert main(["--json", "bfcl", "--limit", "2", "--data-dir", str(data_dir), *extra]) == 0
    figures: dict[str, Any] = json.loads(capsys.readouterr().out)
    return figures


def _check(figures: dict[str, Any]) -> None:
    assert figures["entries"] == 8
    assert figures["by_category"] == dict.fromkeys(MULTI_TURN, 2)
    assert figures["valid"] == 8 and figures["errors"] == 0
    # Every entry has at least one turn, and each turn ends with an answer: one call per turn at least.
    assert figures["model_calls"] >= 8
    wall = figures["wall_s"]
    seconds, shares = figures["seconds"], figures["shares"]
    assert set(seconds) == set(shares) == {key for key, _ in ACTIVITIES}
    assert all(v >= 0 for v in seconds.values())
    assert seconds["model"] > 0 and seconds["apis"] > 0 and seconds["score"] + seconds["score_apis"] > 0
    # Exclusive accounting: the activities never add up to more than the wall time.
    assert sum(seconds[k] for k in seconds if k != "idle") <= wall * 1.001
    assert sum(seconds.values()) == pytest.approx(wall)
    assert all(0 <= s <= 1 for s in shares.values())
    assert 0 < figures["outside_model_share"] < 1
    assert figures["outside_model_share"] == pytest.approx(sum(seconds[k] for k in OUTSIDE) / wall)
    assert figures["inside_model_share"] + figures["outside_model_share"] == pytest.approx(1)
    cpu = figures["cpu_seconds"]
    assert set(cpu) == set(seconds) - {"idle"} and all(v >= 0 for v in cpu.values())
    # The loop thread's CPU, split by activity, is at most this process's CPU.
    assert 0 < sum(cpu.values()) <= figures["client_cpu_s"] * 1.01
    assert 0 < figures["cpu_outside_model_share"] < 1
    # Latency is wall time per call, waiting included (the template probe, charged to the model, is not a call).
    assert figures["model_latency_sum_s"] > 0


def test_the_gold_replay_over_http_scores_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    figures = _run(capsys)
    _check(figures)
    assert figures["backend"].startswith("OpenAICompatible") and figures["stub_server_cpu_s"] is not None


@pytest.mark.parametrize("fmt", ["pythonic", "native"])
def test_the_in_process_replay_scores_every_entry(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    figures = _run(capsys, "--no-http", "--format", fmt, "--concurrency", "3")
    _check(figures)
    assert figures["format"] == fmt and figures["concurrency"] == 3
    assert figures["backend"].startswith("in-process") and figures["stub_server_cpu_s"] is None


def test_the_report_names_every_activity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bfcl", "--limit", "1", "--no-http", "--data-dir", str(full_data_dir())]) == 0
    out = capsys.readouterr().out
    assert "entries 4 " in out and "valid 4/4" in out
    assert all(label in out for _, label in ACTIVITIES)


def test_a_request_is_answered_by_its_tag_and_an_unknown_one_by_the_answer() -> None:
    plans: dict[str, list[Any]] = {"e_1": ["first", [("f", {"a": 1})]]}
    assert planned(plans, "nous", "e_1#0") == "first"
    assert planned(plans, "nous", "e_1#1") == [("f", {"a": 1})]
    assert planned(plans, "nous", "e_1#2") == planned(plans, "nous", "nobody#0") == planned(plans, "nous", None)
    assert TAG.isidentifier()


@pytest.mark.parametrize("reply", ["a reply longer than one chunk ✿", [("f", {"a": [1, "x"]}), ("g", {})]])
def test_the_stub_stream_reads_back_as_the_reply(reply: Any) -> None:
    assembler = StreamAssembler("stub")
    for event in stream_body(reply).split(b"\n\n"):
        payload = event.removeprefix(b"data: ")
        if payload and payload != b"[DONE]":
            assembler.feed(payload)
    completion = assembler.completion()
    if isinstance(reply, str):
        assert completion.text == reply and completion.finish_reason == "stop"
    else:
        assert [(c.name, c.arguments) for c in completion.tool_calls] == reply
        assert completion.finish_reason == "tool_calls"


def test_without_breakdown_only_the_wall_time_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    figures = _run(capsys, "--no-http", "--no-breakdown")
    assert figures["entries"] == figures["valid"] == 8 and figures["breakdown"] is False
    assert figures["wall_s"] > 0 and figures["seconds"]["idle"] == figures["wall_s"]
    assert sum(figures["cpu_seconds"].values()) == 0


def test_a_bad_limit_is_refused() -> None:
    with pytest.raises(SystemExit, match="at least 1"):
        main(["bfcl", "--limit", "0"])
