"""Every single-turn category: gold and mutated calls get the official bfcl-eval verdicts, record for record."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qwenkit.bench.bfcl import checker
from qwenkit.bench.bfcl.categories import SINGLE_TURN, SIZES
from qwenkit.bench.bfcl.data import NO_ANSWER, BfclItem
from qwenkit.bench.bfcl.gold import gold_calls
from qwenkit.bench.bfcl.task import BfclTask
from qwenkit.testing import FunctionModel
from tests.bench.bfcl.helpers import full_data_dir
from tests.bench.bfcl.official import official_ast, official_language

AST_CATEGORIES = [c for c in SINGLE_TURN if c not in NO_ANSWER]
KNOWN_BAD_GOLD = {
    # Ground truth the official checker itself rejects (a required parameter absent from the answer, a
    # Java ArrayList of "any" whose answer mixes types, an answer parameter outside the schema).
    "simple_java_36", "simple_java_65", "live_simple_106-63-0", "live_simple_112-68-0", "live_multiple_507-149-4",
    "live_multiple_862-181-3", "live_multiple_964-207-0",
}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return full_data_dir()


@pytest.fixture(scope="module")
def task(data_dir: Path) -> BfclTask:
    return BfclTask(FunctionModel(lambda r: ""), "nous", data_dir, list(SINGLE_TURN))


def _ours(task: BfclTask, item: BfclItem, calls: list[dict[str, Any]]) -> checker.Verdict:
    return checker.check(item.category, item.functions, calls, item.ground_truth,
                         convert=task.converter(item.category))


def _theirs(data_dir: Path, item: BfclItem, calls: list[dict[str, Any]]) -> bool:
    ast_checker, language = official_ast(data_dir)
    try:
        result = ast_checker(copy.deepcopy(item.functions), copy.deepcopy(calls), item.ground_truth,
                             official_language(language, item.category), item.category, "qwenkit")
    except Exception:
        return False
    return bool(result["valid"])


def test_every_category_is_read_in_full(task: BfclTask) -> None:
    counts: dict[str, int] = {}
    for record in task.records():
        counts[record.category] = counts.get(record.category, 0) + 1
    assert counts == {c: SIZES[c] for c in SINGLE_TURN}


def test_gold_answers_pass_and_agree_with_the_official_checker(task: BfclTask, data_dir: Path) -> None:
    failing, disagree = set(), []
    for record in task.records():
        item: BfclItem = record.data
        if item.category in NO_ANSWER:
            continue
        calls = [{n: a} for n, a in gold_calls(item)]
        ours = _ours(task, item, calls)
        if not ours.valid:
            failing.add(item.id)
        if ours.valid != _theirs(data_dir, item, calls):
            disagree.append(item.id)
    assert disagree == []
    assert failing == KNOWN_BAD_GOLD


def _first_param(item: BfclItem, calls: list[dict[str, Any]]) -> tuple[str, str] | None:
    name = next(iter(calls[0]))
    params = calls[0][name]
    return (name, next(iter(params))) if params else None


def _wrong_value(item: BfclItem, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = _first_param(item, calls)
    if found is not None:
        name, param = found
        value = calls[0][name][param]
        calls[0][name][param] = "qwenkit-wrong" if not isinstance(value, str) or value != "qwenkit-wrong" else "x"
    return calls


def _raw_python_value(item: BfclItem, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = _first_param(item, calls)
    if found is not None:
        name, param = found
        calls[0][name][param] = 12345  # Java/JavaScript values must be strings of literals
    return calls


def _drop_param(item: BfclItem, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = _first_param(item, calls)
    if found is not None:
        del calls[0][found[0]][found[1]]
    return calls


def _extra_param(item: BfclItem, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    calls[0][next(iter(calls[0]))]["qwenkit_extra"] = "1"
    return calls


def _extra_call(item: BfclItem, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*calls, copy.deepcopy(calls[0])]


MUTATIONS: dict[str, Callable[[BfclItem, list[dict[str, Any]]], list[dict[str, Any]]]] = {
    "wrong_value": _wrong_value, "raw_python_value": _raw_python_value, "drop_param": _drop_param,
    "extra_param": _extra_param, "extra_call": _extra_call,
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_mutated_answers_get_the_official_verdict(task: BfclTask, data_dir: Path, mutation: str) -> None:
    disagree, rejected = [], 0
    for record in task.records():
        item: BfclItem = record.data
        if item.category in NO_ANSWER or item.id in KNOWN_BAD_GOLD:
            continue
        calls = MUTATIONS[mutation](item, copy.deepcopy([{n: a} for n, a in gold_calls(item)]))
        ours = _ours(task, item, calls)
        rejected += not ours.valid
        if ours.valid != _theirs(data_dir, item, calls):
            disagree.append((item.id, ours.reason, ours.detail))
    assert disagree == []
    assert rejected > 1000  # the mutations are real: most records now fail


def test_java_values_must_be_strings_of_java_literals(task: BfclTask) -> None:
    item = next(r.data for r in task.records() if r.id == "simple_java_1")
    good = [{n: a} for n, a in gold_calls(item)]
    assert _ours(task, item, good).valid
    name = next(iter(good[0]))
    raw = copy.deepcopy(good)
    raw[0][name]["useShortName"] = True  # a Python bool, not the literal "true"
    verdict = _ours(task, item, raw)
    assert not verdict.valid and verdict.reason == checker.TYPE_MISMATCH


@pytest.mark.parametrize(("category", "calls", "valid"), [
    ("live_relevance", [{"anything": {}}], True),
    ("live_relevance", [], False),
    ("live_irrelevance", [], True),
    ("live_irrelevance", [{"anything": {}}], False),
    ("irrelevance", [], True),
])
def test_relevance_rules(category: str, calls: list[dict[str, Any]], valid: bool) -> None:
    assert checker.check(category, [], calls, None).valid is valid


def test_undecodable_output_fails_relevance_and_passes_irrelevance() -> None:
    assert not checker.check("live_relevance", [], [{"f": {}}], None, undecodable="bad json").valid
    assert checker.check("live_irrelevance", [], [{"f": {}}], None, undecodable="bad json").valid
