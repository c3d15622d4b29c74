"""BFCL's AST checker rules, one test each, plus mutated gold answers run through the whole pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qwenkit.bench.bfcl import checker
from qwenkit.bench.bfcl.checker import check, check_call, standardize_string
from qwenkit.bench.bfcl.data import CATEGORIES
from qwenkit.bench.bfcl.task import BfclTask
from qwenkit.bench.runner import run_bench
from qwenkit.testing import FunctionModel
from tests.bench.bench_helpers import scripted_bfcl_model

AREA = {
    "name": "geo.area",
    "description": "Area of a shape.",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "float"},
            "unit": {"type": "string"},
            "point": {"type": "tuple", "items": {"type": "integer"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "opts": {"type": "dict", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}},
            "rows": {"type": "array", "items": {"type": "dict"}},
            "exact": {"type": "boolean"},
            "anything": {"type": "any"},
        },
        "required": ["base", "height"],
    },
}
OTHER = {"name": "geo.perimeter", "description": "", "parameters": {
    "type": "dict", "properties": {"side": {"type": "integer"}}, "required": ["side"]}}
ANSWER = {"geo.area": {
    "base": [10], "height": [5.0], "unit": ["units", ""], "point": [[1, 2], ""], "tags": [["A b", "c"], ""],
    "opts": [{"a": [1], "b": ["x", ""]}, ""], "rows": [[{"k": ["v"]}], ""], "exact": [True, ""],
    "anything": ["", "val"],
}}


def call(**args: Any) -> dict[str, dict[str, Any]]:
    return {"geo.area": {"base": 10, "height": 5.0, **args}}


def verdict(c: dict[str, dict[str, Any]]) -> checker.Verdict:
    return check_call(AREA, c, ANSWER)


def test_exact_function_name_required() -> None:
    v = verdict({"geo_area": {"base": 10, "height": 5.0}})
    assert (v.valid, v.reason) == (False, checker.WRONG_FUNCTION)
    assert verdict(call()).valid


def test_every_required_parameter_present() -> None:
    v = verdict({"geo.area": {"base": 10}})
    assert (v.valid, v.reason) == (False, checker.MISSING_REQUIRED)
    assert "height" in v.detail


def test_parameter_outside_the_answer_or_schema_is_unexpected() -> None:
    assert verdict(call(color="red")).reason == checker.UNEXPECTED_PARAM
    answer_without_exact = {"geo.area": {k: v for k, v in ANSWER["geo.area"].items() if k != "exact"}}
    v = check_call(AREA, call(exact=True), answer_without_exact)
    assert v.reason == checker.UNEXPECTED_PARAM


def test_optional_parameter_may_be_omitted_only_where_empty_string_listed() -> None:
    assert verdict(call()).valid  # every optional one lists ""
    strict = {"geo.area": {**ANSWER["geo.area"], "unit": ["units"]}}
    v = check_call(AREA, call(), strict)
    assert (v.valid, v.reason) == (False, checker.MISSING_OPTIONAL)


def test_int_accepted_for_float_but_not_float_for_int() -> None:
    assert verdict({"geo.area": {"base": 10, "height": 5}}).valid
    v = verdict({"geo.area": {"base": 10.0, "height": 5.0}})
    assert (v.valid, v.reason) == (False, checker.TYPE_MISMATCH)


def test_wrong_type_is_a_type_mismatch() -> None:
    assert verdict(call(unit=3)).reason == checker.TYPE_MISMATCH
    assert verdict({"geo.area": {"base": "10", "height": 5.0}}).reason == checker.TYPE_MISMATCH
    assert verdict(call(exact=1)).reason == checker.TYPE_MISMATCH  # bool is not int, nor int bool


def test_tuple_accepted_as_list_and_items_type_checked() -> None:
    assert verdict(call(point=[1, 2])).valid
    assert verdict(call(point=(1, 2))).valid
    # BFCL checks item types against each listed value in turn; a listed "" passes that check.
    assert verdict(call(point=[1, "2"])).reason == checker.VALUE_MISMATCH
    strict = {"geo.area": {**ANSWER["geo.area"], "point": [[1, 2]]}}
    assert check_call(AREA, call(point=[1, "2"]), strict).reason == checker.TYPE_MISMATCH


def test_strings_normalised() -> None:
    assert standardize_string("New York, NY") == "newyorkny"
    assert standardize_string("It's A-b_c*d^e/f.") == 'it"sabcdef'
    assert verdict(call(unit=" U-N_I.T/S ")).valid
    v = verdict(call(unit="meters"))
    assert (v.valid, v.reason) == (False, checker.VALUE_MISMATCH)


def test_lists_compared_in_order_with_normalised_strings() -> None:
    assert verdict(call(tags=["a B", "C"])).valid
    assert verdict(call(tags=["c", "A b"])).reason == checker.VALUE_MISMATCH


def test_dicts_checked_key_by_key() -> None:
    assert verdict(call(opts={"a": 1, "b": "X"})).valid
    assert verdict(call(opts={"a": 1})).valid  # "b" lists ""
    assert verdict(call(opts={"b": "x"})).reason == checker.VALUE_MISMATCH  # "a" missing
    assert verdict(call(opts={"a": 2})).reason == checker.VALUE_MISMATCH
    assert verdict(call(opts={"a": 1, "z": 0})).reason == checker.VALUE_MISMATCH


def test_list_of_dicts_checked_item_by_item() -> None:
    assert verdict(call(rows=[{"k": "V"}])).valid
    assert verdict(call(rows=[{"k": "w"}])).reason == checker.VALUE_MISMATCH
    assert verdict(call(rows=[{"k": "v"}, {"k": "v"}])).reason == checker.VALUE_MISMATCH


def test_other_values_must_equal_a_listed_one() -> None:
    assert verdict(call(exact=True)).valid
    assert verdict(call(exact=False)).reason == checker.VALUE_MISMATCH
    assert verdict({"geo.area": {"base": 11, "height": 5.0}}).reason == checker.VALUE_MISMATCH


def test_value_of_the_answers_own_type_is_a_variable() -> None:
    # BFCL: for type "any" (checked as str) an answer of another type is compared as that type.
    assert verdict(call(anything="val")).valid
    answer = {"geo.area": {**ANSWER["geo.area"], "anything": [3]}}
    assert check_call(AREA, call(anything=3), answer).valid


PAR_ANSWERS = [{"geo.area": {"base": [1], "height": [2.0]}}, {"geo.area": {"base": [3], "height": [4.0]}},
               {"geo.perimeter": {"side": [5]}}]


def test_parallel_calls_match_in_any_order() -> None:
    calls = [{"geo.perimeter": {"side": 5}}, {"geo.area": {"base": 3, "height": 4}},
             {"geo.area": {"base": 1, "height": 2}}]
    assert check("parallel_multiple", [AREA, OTHER], calls, PAR_ANSWERS).valid
    assert check("parallel", [AREA, OTHER], calls[::-1], PAR_ANSWERS).valid


def test_parallel_needs_each_answer_matched_once() -> None:
    calls = [{"geo.area": {"base": 1, "height": 2}}, {"geo.area": {"base": 1, "height": 2}},
             {"geo.perimeter": {"side": 5}}]
    v = check("parallel", [AREA, OTHER], calls, PAR_ANSWERS)
    assert (v.valid, v.reason) == (False, checker.VALUE_MISMATCH)
    assert check("parallel", [AREA, OTHER], calls[:2], PAR_ANSWERS).reason == checker.WRONG_COUNT


def test_multiple_expects_exactly_one_call_of_the_answered_function() -> None:
    answers = [{"geo.perimeter": {"side": [5]}}]
    assert check("multiple", [AREA, OTHER], [{"geo.perimeter": {"side": 5}}], answers).valid
    two = [{"geo.perimeter": {"side": 5}}, {"geo.perimeter": {"side": 5}}]
    assert check("multiple", [AREA, OTHER], two, answers).reason == checker.WRONG_COUNT
    wrong = [{"geo.area": {"base": 1, "height": 2}}]
    assert check("multiple", [AREA, OTHER], wrong, answers).reason == checker.WRONG_FUNCTION


def test_simple_expects_exactly_one_call() -> None:
    answers = [{"geo.area": {"base": [10], "height": [5.0]}}]
    assert check("simple_python", [AREA], [], answers).reason == checker.WRONG_COUNT
    assert check("simple_python", [AREA], [call(), call()], answers).reason == checker.WRONG_COUNT


def test_irrelevance_passes_only_without_a_call() -> None:
    assert check("irrelevance", [AREA], [], None).valid
    v = check("irrelevance", [AREA], [call()], None)
    assert (v.valid, v.reason) == (False, checker.WRONG_COUNT)
    # As in BFCL, output that cannot be decoded into calls is no call.
    assert check("irrelevance", [AREA], [call()], None, undecodable="bad JSON").valid


def test_unparsable_output_fails_with_its_reason() -> None:
    answers = [{"geo.area": {"base": [10], "height": [5.0]}}]
    v = check("simple_python", [AREA], [{"geo.area": {}}], answers, undecodable="bad JSON")
    assert (v.valid, v.reason, v.detail) == (False, checker.UNPARSABLE, "bad JSON")


# ---------------------------------------------------------------------------- mutations, whole pipeline

def _wrong_name(item: Any, calls: list[Any]) -> list[Any]:
    return [(calls[0][0] + "_x", calls[0][1]), *calls[1:]]


def _drop_required(item: Any, calls: list[Any]) -> list[Any]:
    name, args = calls[0]
    fn = next(f for f in item.functions if f["name"] == name)
    req = fn["parameters"]["required"][0]
    return [(name, {k: v for k, v in args.items() if k != req}), *calls[1:]]


def _extra_param(item: Any, calls: list[Any]) -> list[Any]:
    name, args = calls[0]
    return [(name, {**args, "zz_extra": 1}), *calls[1:]]


def _wrong_type(item: Any, calls: list[Any]) -> list[Any]:
    name, args = calls[0]
    key = next(k for k, v in args.items() if isinstance(v, str))
    return [(name, {**args, key: [args[key]]}), *calls[1:]]


def _swap(item: Any, calls: list[Any]) -> list[Any]:
    return calls[::-1]


def _call_anyway(item: Any, calls: list[Any]) -> list[Any]:
    fn = item.functions[0]
    return [(fn["name"], {})]


@pytest.mark.parametrize(("mutate", "categories", "reason", "ids"), [
    (_wrong_name, ["simple_python", "multiple", "parallel"], checker.WRONG_FUNCTION,
     ["simple_python_0", "multiple_0", "parallel_0"]),
    (_drop_required, ["simple_python", "multiple"], checker.MISSING_REQUIRED, ["simple_python_0", "multiple_0"]),
    (_extra_param, ["simple_python", "parallel_multiple"], checker.UNEXPECTED_PARAM,
     ["simple_python_0", "parallel_multiple_0"]),
    (_wrong_type, ["simple_python"], checker.TYPE_MISMATCH, ["simple_python_0"]),
    (_swap, ["parallel", "parallel_multiple"], checker.OK, ["parallel_0", "parallel_multiple_0"]),
    (_call_anyway, ["irrelevance"], checker.WRONG_COUNT, ["irrelevance_0"]),
])
async def test_mutated_gold_gets_the_expected_verdict(
    bfcl_dir: Path, tmp_path: Path, mutate: Any, categories: list[str], reason: str, ids: list[str],
) -> None:
    assert set(categories) <= set(CATEGORIES)
    task = BfclTask(FunctionModel(lambda r: ""), "nous", bfcl_dir, categories, ids=ids)
    items = [r.data for r in task.records()]
    assert [i.id for i in items] == ids
    task.model = scripted_bfcl_model(task, items, "nous", mutate=mutate)
    outcome = await run_bench(task, tmp_path, progress=False)
    assert [(r.id, r.score["reason"]) for r in outcome.rows] == [(i, reason) for i in ids]
    assert all(r.score["detail"] for r in outcome.rows if reason != checker.OK)
