"""BFCL multi-turn through `qwenkit.Agent` against bfcl-eval's own API classes, scored as the official checker."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qwenkit.bench.bfcl.categories import MULTI_TURN
from qwenkit.bench.bfcl.executor import ApiSession, parse_call
from qwenkit.bench.bfcl.multiturn import (
    ADDED_FUNCTIONS_PROMPT,
    STEP_LIMIT,
    MultiTurnEntry,
    gold_calls,
    load_multi_turn,
    official_verdict,
    score_entry,
    trajectory_calls,
)
from qwenkit.bench.bfcl.package import load
from qwenkit.bench.bfcl.task import BfclTask
from qwenkit.bench.runner import run_bench
from qwenkit.llm.base import ChatRequest
from qwenkit.testing import FunctionModel
from qwenkit.types import Completion, ToolCall
from tests.bench.bfcl.helpers import Steps, full_data_dir, replay_model, split_duplicates

FORMATS = ("nous", "qwen", "react", "native", "pythonic")


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return full_data_dir()


@pytest.fixture(scope="module")
def entries(data_dir: Path) -> dict[str, list[MultiTurnEntry]]:
    return {c: load_multi_turn(data_dir, c) for c in MULTI_TURN}


def test_entries_tools_and_held_back_functions(entries: dict[str, list[MultiTurnEntry]]) -> None:
    assert {c: len(e) for c, e in entries.items()} == dict.fromkeys(MULTI_TURN, 200)
    for entry in entries["multi_turn_miss_func"]:
        missed = entry.raw["missed_function"]
        held = {name for names in missed.values() for name in names}
        assert held and not held & {f["name"] for f in entry.functions}
        assert {f["name"] for fs in entry.added.values() for f in fs} == held
        assert all(entry.turns[int(t)] == [] for t in missed)
    excluded = [e for e in entries["multi_turn_base"] if e.raw.get("excluded_function")]
    assert excluded
    for entry in excluded:
        assert not set(entry.raw["excluded_function"]) & {f["name"] for f in entry.functions}


# ------------------------------------------------------------------------------ by name vs the official eval

def test_by_name_execution_matches_the_official_eval_path_on_all_800(
    data_dir: Path, entries: dict[str, list[MultiTurnEntry]],
) -> None:
    utils = load(data_dir, "eval_checker.multi_turn_eval.multi_turn_utils")
    for category, items in entries.items():
        for entry in items:
            ours = ApiSession(data_dir, entry.involved_classes, entry.initial_config, long_context=entry.long_context)
            name = f"qwenkit_{uuid.uuid4().hex}"
            theirs: dict[str, Any] = {}
            for turn in entry.ground_truth:
                results = [ours.execute_parsed(parse_call(c)) for c in turn]
                official, theirs = utils.execute_multi_turn_func_call(
                    turn, entry.initial_config, entry.involved_classes, name, entry.id,
                    long_context=entry.long_context, is_evaL_run=True)
                assert results == official, (entry.id, category)
            for class_name, instance in ours.instances.items():
                other = theirs[class_name]
                assert _state(instance) == _state(other), (entry.id, class_name)


def _state(instance: Any) -> dict[str, Any]:
    """Public attributes (what the official state check compares), and the state of a private random generator."""
    out = {k: v for k, v in vars(instance).items() if not k.startswith("_")}
    rng = getattr(instance, "_random", None)
    if rng is not None:
        out["_random"] = rng.getstate()
    return out


def test_errors_and_unknown_names_are_written_as_the_official_harness_writes_them(data_dir: Path) -> None:
    entry_classes = ["GorillaFileSystem", "MathAPI"]
    session = ApiSession(data_dir, entry_classes, {"GorillaFileSystem": {"root": {"alex": {
        "type": "directory", "contents": {}}}}})
    assert "nowhere" in session.execute("cd", {"folder": "nowhere"})  # the class's own error result
    assert session.execute("no_such", {}) == "Error during execution: name 'no_such' is not defined"
    assert session.execute("kill", {}) == "Error during execution: Function call kill is not allowed."
    bad = session.execute("add", {"a": 1})
    assert bad.startswith("Error during execution: ") and "missing" in bad
    assert session.execute("__init__", {}) == "Error during execution: name '__init__' is not defined"


# ------------------------------------------------------------------------------ gold replay through the Agent

async def _replay(data_dir: Path, fmt: str, items: list[MultiTurnEntry], tmp: Path, mode: str = "fc",
                  steps_of: Callable[[MultiTurnEntry], Steps] | None = None) -> dict[str, Any]:
    steps_of = steps_of or (lambda e: gold_calls(data_dir, e))
    rows = {}
    for n, group in enumerate(split_duplicates(items)):
        task = BfclTask(replay_model(fmt, group, steps_of), fmt, data_dir, MULTI_TURN, ids=[e.id for e in group],
                        mode=mode)
        outcome = await run_bench(task, tmp / f"{fmt}-{mode}-{n}", concurrency=8, progress=False)
        rows.update({r.id: r for r in outcome.rows})
    return rows


async def _check_replay(data_dir: Path, fmt: str, items: list[MultiTurnEntry], tmp: Path, mode: str = "fc") -> None:
    rows = await _replay(data_dir, fmt, items, tmp, mode)
    assert len(rows) == len(items)
    by_id = {e.id: e for e in items}
    for row in rows.values():
        assert row.status == "ok", row.error
        official = official_verdict(data_dir, by_id[row.id], trajectory_calls(row.result))
        assert row.score["valid"] is official["valid"] is True, (row.id, row.score)


def _sample(entries: dict[str, list[MultiTurnEntry]], n: int) -> list[MultiTurnEntry]:
    return [e for items in entries.values() for e in items[:n]]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_gold_replay_through_the_agent_scores_as_the_official_checker(
    data_dir: Path, entries: dict[str, list[MultiTurnEntry]], tmp_path: Path, fmt: str,
) -> None:
    """10 entries per category in each format (the full 800 x formats run is the slow test below)."""
    await _check_replay(data_dir, fmt, _sample(entries, 10), tmp_path)


async def test_gold_replay_in_prompt_mode(data_dir: Path, entries: dict[str, list[MultiTurnEntry]],
                                          tmp_path: Path) -> None:
    await _check_replay(data_dir, "pythonic", _sample(entries, 10), tmp_path, mode="prompt")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
async def test_gold_replay_all_800_entries(data_dir: Path, entries: dict[str, list[MultiTurnEntry]],
                                           tmp_path: Path, fmt: str) -> None:
    await _check_replay(data_dir, fmt, _sample(entries, 200), tmp_path)


# ------------------------------------------------------------------------------ mutated trajectories

def _first(entries: dict[str, list[MultiTurnEntry]], category: str, test: Callable[[MultiTurnEntry], bool]
           ) -> MultiTurnEntry:
    return next(e for e in entries[category] if test(e))


def _drop_last_call(steps: Steps) -> Steps:
    out = copy.deepcopy(steps)
    turn = next(i for i in reversed(range(len(out))) if out[i])
    out[turn][0].pop()
    if not out[turn][0]:
        out[turn] = []
    return out


def _wrong_argument(steps: Steps) -> Steps:
    out = copy.deepcopy(steps)
    for turn in out:
        for step in turn:
            for _, args in step:
                for key, value in args.items():
                    if isinstance(value, str):
                        args[key] = value + "_qwenkit"
                        return out
    raise AssertionError("no string argument")


def _extra_state_call(steps: Steps) -> Steps:
    out = copy.deepcopy(steps)
    out[0][0].append(("mkdir", {"dir_name": "qwenkit_extra"}))
    return out


def _call_in_empty_turn(steps: Steps) -> Steps:
    out = copy.deepcopy(steps)
    turn = next(i for i, t in enumerate(out) if not t)
    out[turn] = [[("pwd", {})]]
    return out


@pytest.mark.parametrize(("mutate", "category", "reasons"), [
    (_drop_last_call, "multi_turn_base", {"multi_turn:instance_state_mismatch",
                                          "multi_turn:execution_response_mismatch",
                                          "multi_turn:empty_turn_model_response"}),
    (_wrong_argument, "multi_turn_base", {"multi_turn:instance_state_mismatch",
                                          "multi_turn:execution_response_mismatch"}),
    (_extra_state_call, "multi_turn_base", {"multi_turn:instance_state_mismatch"}),
    (_call_in_empty_turn, "multi_turn_miss_param", {"multi_turn:irrelevance_error:decoder_success"}),
])
def test_mutated_trajectories_fail_with_the_official_reason(
    data_dir: Path, entries: dict[str, list[MultiTurnEntry]], mutate: Callable[[Steps], Steps], category: str,
    reasons: set[str],
) -> None:
    checked = 0
    for entry in entries[category][:60]:
        if mutate is _extra_state_call and "GorillaFileSystem" not in entry.involved_classes:
            continue
        if mutate is _call_in_empty_turn and (all(entry.ground_truth) or
                                              "GorillaFileSystem" not in entry.involved_classes):
            continue
        try:
            steps = mutate(gold_calls(data_dir, entry))
        except (AssertionError, StopIteration):
            continue
        ours = score_entry(data_dir, entry, steps)
        official = official_verdict(data_dir, entry, steps)
        assert ours["valid"] is official["valid"], entry.id
        if not ours["valid"]:
            assert ours["reason"] == official["error_type"], entry.id
            assert ours["reason"] in reasons and isinstance(ours["turn"], int), (entry.id, ours)
            checked += 1
    assert checked >= 5


async def test_a_mutated_trajectory_through_the_agent_names_turn_and_reason(
    data_dir: Path, entries: dict[str, list[MultiTurnEntry]], tmp_path: Path,
) -> None:
    entry = entries["multi_turn_base"][0]
    rows = await _replay(data_dir, "nous", [entry], tmp_path, steps_of=lambda e: _extra_state_call(
        gold_calls(data_dir, e)))
    score = rows[entry.id].score
    assert score["valid"] is False and score["reason"] == "multi_turn:instance_state_mismatch"
    assert score["turn"] == 0 and score["diff"]["differences"]


# ------------------------------------------------------------------------------ harness behaviour

async def test_step_cap_force_terminates_the_entry(data_dir: Path, entries: dict[str, list[MultiTurnEntry]],
                                                   tmp_path: Path) -> None:
    entry = entries["multi_turn_base"][0]
    model = FunctionModel(lambda r: '<tool_call>\n{"name": "pwd", "arguments": {}}\n</tool_call>')
    task = BfclTask(model, "nous", data_dir, ["multi_turn_base"], ids=[entry.id])
    outcome = await run_bench(task, tmp_path, progress=False)
    row = outcome.rows[0]
    turns = row.result["turns"]
    assert len(turns) == 1 and turns[0]["ended"] == "step_cap" and len(turns[0]["steps"]) == STEP_LIMIT + 1
    assert row.score["reason"] == "multi_turn:force_terminated" and row.score["turn"] == 0


async def test_held_back_functions_arrive_at_their_turn_with_the_official_words(
    data_dir: Path, entries: dict[str, list[MultiTurnEntry]], tmp_path: Path,
) -> None:
    entry = entries["multi_turn_miss_func"][0]
    turn = min(entry.added)
    held = {f["name"] for f in entry.added[turn]}
    seen: list[tuple[set[str], str]] = []

    def answer(request: ChatRequest) -> Completion:
        names = {t["function"]["name"] for t in request.tools or []}
        seen.append((names, str(request.messages[-1].content)))
        return Completion(text="ok", finish_reason="stop")

    task = BfclTask(FunctionModel(answer), "native", data_dir, ["multi_turn_miss_func"], ids=[entry.id])
    await run_bench(task, tmp_path, progress=False)
    assert len(seen) == len(entry.turns)
    assert all(not held & names for names, _ in seen[:turn])
    assert held <= seen[turn][0] and seen[turn][1] == ADDED_FUNCTIONS_PROMPT


async def test_one_steps_calls_run_in_the_order_written(data_dir: Path, entries: dict[str, list[MultiTurnEntry]],
                                                       tmp_path: Path) -> None:
    """cd, mkdir, mv in one reply depend on each other: run concurrently they would fail."""
    entry = entries["multi_turn_base"][0]
    steps = gold_calls(data_dir, entry)
    assert len(steps[0][0]) >= 3
    rows = await _replay(data_dir, "native", [entry], tmp_path)
    first = rows[entry.id].result["turns"][0]["steps"][0]["calls"]
    assert [c["name"] for c in first] == [n for n, _ in steps[0][0]]
    assert all(not str(c["result"]).startswith("Error") for c in first)
    assert rows[entry.id].score["valid"]


def test_native_tool_calls_are_plain_tool_calls() -> None:
    # The replay helper's native replies are real tool_calls (not text), as a server's would be.
    from tests.bench.bfcl.helpers import reply

    out = reply("native", [("cd", {"folder": "x"})])
    assert isinstance(out, Completion) and isinstance(out.tool_calls[0], ToolCall)


async def test_the_shared_model_stays_open_and_a_server_failure_is_an_error_row(
    data_dir: Path, entries: dict[str, list[MultiTurnEntry]], tmp_path: Path,
) -> None:
    from qwenkit.errors import ModelError

    ids = [e.id for e in entries["multi_turn_base"][:2]]
    ok = FunctionModel(lambda r: "Nothing to do.")
    outcome = await run_bench(BfclTask(ok, "nous", data_dir, ["multi_turn_base"], ids=ids), tmp_path / "a",
                              progress=False)
    assert not ok.closed and len(ok.requests) == sum(len(e.turns) for e in entries["multi_turn_base"][:2])
    assert {r.score["reason"] for r in outcome.rows} == {"multi_turn:empty_turn_model_response"}

    def fail(request: ChatRequest) -> str:
        raise ModelError("the model server did not answer in time")

    outcome = await run_bench(BfclTask(FunctionModel(fail), "nous", data_dir, ["multi_turn_base"], ids=ids),
                              tmp_path / "b", progress=False)
    assert [r.status for r in outcome.rows] == ["error", "error"]
    assert all("did not answer in time" in (r.error or "") for r in outcome.rows)
