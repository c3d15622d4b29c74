"""``python -m qwenkit.bench.perf loop|parse``: they run and report; what they measure is not asserted."""

from __future__ import annotations

import json
import re
import sys

import pytest

from qwenkit.bench.perf import main
from qwenkit.bench.perf_loop import ANSWER, CALL, measure_qwenkit

LABELS = ("Agent.run, sync tool", "Agent.run, async tool", "await Agent.arun, sync tool",
          "await Agent.arun, async tool")


def test_loop_measures_the_four_qwenkit_variants() -> None:
    figures = measure_qwenkit(n=3, warmup=1)
    assert set(figures) == {"run_sync_tool", "run_async_tool", "arun_sync_tool", "arun_async_tool"}
    for f in figures.values():
        assert f["n"] == 3 and 0 < f["p50_s"] <= f["p90_s"]


def test_loop_says_in_one_line_when_qwen_agent_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "qwen_agent", None)  # import qwen_agent now raises ImportError
    assert main(["loop", "--conversations", "3", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert all(label in out for label in LABELS)
    assert out.rstrip().splitlines()[-1] == (
        "  Qwen-Agent: not installed (pip install qwen-agent to compare with its FnCallAgent).")


def test_loop_compares_with_qwen_agent_on_the_same_exchange(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("qwen_agent", reason="qwen-agent is an optional comparison")
    assert main(["--json", "loop", "--conversations", "3", "--warmup", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    theirs = figures["qwen_agent"]["fncall_agent_sync_tool"]
    assert theirs["n"] == 3 and theirs["p50_s"] > 0
    ratios = figures["ratio_p50_qwenkit_over_qwen_agent"]
    assert set(ratios) == set(figures["qwenkit"])
    assert ratios["run_sync_tool"] == pytest.approx(figures["qwenkit"]["run_sync_tool"]["p50_s"] / theirs["p50_s"])


def test_the_scripted_exchange_is_one_nous_call_then_an_answer() -> None:
    call = json.loads(CALL.removeprefix("<tool_call>\n").removesuffix("\n</tool_call>"))
    assert call == {"name": "add", "arguments": {"a": 2, "b": 3}} and "5" in ANSWER


def test_parse_runs_the_chosen_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "parse", "--size-mb", "0.01", "--formats", "nous"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["size_mb"] == 0.01
    assert figures["results"] and {r["format"] for r in figures["results"]} == {"nous"}


def test_parse_refuses_an_unknown_format() -> None:
    with pytest.raises(SystemExit, match="unknown format bogus"):
        main(["parse", "--formats", "nous,bogus"])


def _runner_report(out: str) -> tuple[list[str], str]:
    lines = out.strip().splitlines()
    return [line for line in lines if line.lstrip().startswith("round ")], lines[-1]


def test_runner_prints_each_round_and_the_median_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["runner", "--concurrency", "4", "--latency", "0.01", "--requests", "8", "--rounds", "2",
                 "--no-baseline"])
    rounds, last = _runner_report(capsys.readouterr().out)
    assert len(rounds) == 2
    assert all("errors 0" in r and "CPU per request: client" in r and "stub server" in r for r in rounds)
    assert last.startswith("C/L = 400.0 req/s") and "median ratio" in last and "goal >= 0.9" in last
    assert code == (0 if "goal >= 0.9: met" in last else 1)


def test_runner_measures_plain_aiohttp_against_the_same_server_as_a_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["runner", "--concurrency", "4", "--latency", "0.01", "--requests", "8", "--rounds", "2"])
    out = capsys.readouterr().out
    head, _, tail = out.partition("baseline, plain aiohttp workers")
    assert "Python 3." in head and tail
    rounds, last = _runner_report(tail)
    assert len(rounds) == 2 and all("errors 0" in r and "stub server" in r for r in rounds)
    measured = re.search(r"baseline median ratio ([0-9.]+); qwenkit / baseline = ([0-9.]+)", out)
    assert measured is not None and 0 < float(measured.group(1)) <= 1.05 and float(measured.group(2)) > 0
    assert "median ratio" in last and "goal >= 0.9" in last  # the verdict is still about qwenkit's runner


def test_runner_without_http_measures_the_runner_alone(capsys: pytest.CaptureFixture[str]) -> None:
    main(["runner", "--no-http", "--concurrency", "3", "--latency", "0.01", "--rounds", "1"])
    out = capsys.readouterr().out
    rounds, last = _runner_report(out)
    assert "SleepModel (no HTTP)" in out and "30 requests x 1 rounds" in out  # default: 10 x concurrency
    assert len(rounds) == 1 and "stub server" not in rounds[0] and "median ratio" in last


def test_runner_refuses_a_zero_concurrency() -> None:
    with pytest.raises(SystemExit):
        main(["runner", "--concurrency", "0"])


def test_perf_trace_prints_the_three_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from qwenkit.bench.perf import main

    assert main(["trace", "--conversations", "5"]) == 0
    out = capsys.readouterr().out
    assert "no tracing at all" in out and "no-op API" in out and "spans exported" in out
    assert "30 spans exported" in out  # 5 conversations x (1 run + 2 chats + 3 tool calls)
