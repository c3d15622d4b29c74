"""Fuzz the benchmarks' file readers: random bytes, random JSON and random unicode give a result or a clear error.

The readers are the BFCL loader (`parse_category`, the bytes behind `load_category`) and the
``results.jsonl`` reader that ``--resume`` uses (`parse_results`, plus the tail repair before appending).
The only assertion is the general rule for untrusted input: a `QwenkitError` or a usable result, never
another exception. Everything is parsed from bytes in-process; the resume case rewrites one temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit._jsonl import repair_tail
from qwenkit.bench.bfcl.data import BfclItem, parse_category
from qwenkit.bench.bfcl.schema import to_tool_specs
from qwenkit.bench.bfcl.task import to_messages
from qwenkit.bench.results import ResultRow, is_valid_line, parse_results
from qwenkit.errors import QwenkitError

FUZZ = settings(max_examples=10_000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

QUESTION: dict[str, Any] = {
    "id": "q0", "question": [[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]],
    "function": [{"name": "f", "description": "d", "parameters": {
        "type": "dict", "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "dict"}}},
        "required": ["a"]}}],
}
ANSWER: dict[str, Any] = {"id": "q0", "ground_truth": [{"f": {"a": [1], "b": [[{"x": [1]}], ""]}}]}
HEADER: dict[str, Any] = {"type": "header", "format_version": 1, "bench": "b", "config_hash": "h", "config": {}}
ROW: dict[str, Any] = {"type": "result", "id": "r0", "category": "c", "status": "ok", "result": {},
                       "score": {"value": 1.0}, "error": None, "duration_s": 0.1}

# Small values keep 10,000 examples per test cheap (drawing big nested values dominates the run time).
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside a JSON object (the places a mutation can hit)."""
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, (*prefix, i))


def _mutated(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid record with one value replaced (or one key dropped): the near misses a loader must refuse."""
    paths = [p for p in _paths(template) if p]

    def apply(path: tuple[Any, ...], value: Any, drop: bool) -> dict[str, Any]:
        obj = json.loads(json.dumps(template))
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        if drop and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return obj

    return st.builds(apply, st.sampled_from(paths), json_values, st.booleans())


def _jsonl(objects: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON Lines of the given values, sometimes cut short at a random byte (a kill mid-write)."""

    def encode(values: list[Any], cut: int | None) -> bytes:
        data = "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values).encode()
        return data[:cut] if cut is not None else data

    return st.builds(encode, st.lists(objects, max_size=2), st.none() | st.integers(0, 400))


# Unicode: any code point, lone surrogates included (encoded with surrogatepass: bytes that are not UTF-8).
unicode_bytes = st.text(st.characters(codec=None), max_size=200).map(
    lambda s: s.encode("utf-8", "surrogatepass"))


def _check_bfcl(category: str, questions: bytes, answers: bytes) -> None:
    try:
        items = parse_category(category, questions, answers)
    except QwenkitError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for item in items:  # a record the loader accepts is usable by the task
        assert isinstance(item, BfclItem)
        to_messages(item.messages)
        to_tool_specs(item.functions)


categories = st.sampled_from(["simple_python", "parallel", "irrelevance"])


@FUZZ
@given(category=categories, questions=st.binary(max_size=300), answers=st.binary(max_size=300))
def test_bfcl_loader_random_bytes(category: str, questions: bytes, answers: bytes) -> None:
    _check_bfcl(category, questions, answers)


@FUZZ
@given(category=categories, questions=_jsonl(json_values | _mutated(QUESTION) | st.just(QUESTION)),
       answers=_jsonl(json_values | _mutated(ANSWER) | st.just(ANSWER)))
def test_bfcl_loader_random_json(category: str, questions: bytes, answers: bytes) -> None:
    _check_bfcl(category, questions, answers)


@FUZZ
@given(category=categories, questions=unicode_bytes, answers=unicode_bytes)
def test_bfcl_loader_random_unicode(category: str, questions: bytes, answers: bytes) -> None:
    _check_bfcl(category, questions, answers)


def _check_results(data: bytes, path: Path) -> None:
    """Parse; and when the file is readable, repairing its tail and appending a row keeps it readable."""
    try:
        header, rows = parse_results(data, "results.jsonl")
    except QwenkitError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert all(isinstance(r, ResultRow) for r in rows.values())
    if header is None:
        return
    path.write_bytes(data)
    repair_tail(path, is_valid_line)
    with path.open("ab") as f:
        f.write(json.dumps({**ROW, "id": "appended"}).encode() + b"\n")
    header_after, rows_after = parse_results(path.read_bytes(), "results.jsonl")  # must not raise
    assert header_after == header
    assert rows_after == {**rows, "appended": rows_after["appended"]}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One results file rewritten by every example: in memory (/dev/shm) where there is one, as a disk write
    per example costs ten times the check itself."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="qwenkit-fuzz-") as tmp:
            yield Path(tmp) / "results.jsonl"
    else:
        yield tmp_path_factory.mktemp("fuzz") / "results.jsonl"


@FUZZ
@given(data=st.binary(max_size=400))
def test_results_reader_random_bytes(scratch: Path, data: bytes) -> None:
    _check_results(data, scratch)


@FUZZ
@given(head=st.sampled_from([b"", json.dumps(HEADER).encode() + b"\n"]),
       body=_jsonl(json_values | _mutated(ROW) | st.just(ROW) | _mutated(HEADER)))
def test_results_reader_random_json(scratch: Path, head: bytes, body: bytes) -> None:
    _check_results(head + body, scratch)


@FUZZ
@given(head=st.sampled_from([b"", json.dumps(HEADER).encode() + b"\n"]), body=unicode_bytes)
def test_results_reader_random_unicode(scratch: Path, head: bytes, body: bytes) -> None:
    _check_results(head + body, scratch)
    assert isinstance(is_valid_line(body.decode("utf-8", "replace")), bool)
