"""Qwen's tool-use metrics: field extraction, the three numbers, BFCL-derived and Qwen-format inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit.bench.errors import BadData, MissingData
from qwenkit.bench.runner import run_bench
from qwenkit.bench.tooluse.data import bfcl_samples, load_qwen_file
from qwenkit.bench.tooluse.metrics import calls_tool, input_rouge_l, react_fields, selects_tool
from qwenkit.bench.tooluse.task import FALSE_POSITIVE, NO_FALSE_CALL, ROUGE, SELECTION, ToolUseTask
from qwenkit.bench.tooluse.tokenizers import resolve_tokenizer, whitespace
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatRequest
from qwenkit.testing import FunctionModel

GOLD = 'Thought: look it up\nAction: get_weather\nAction Input: {"unit": "c", "city": "Paris"}\nObservation: 20'


def test_react_fields_follow_qwen_slicing() -> None:
    f = react_fields(GOLD)
    assert f.action == "get_weather"
    assert f.action_input == '{"city": "Paris", "unit": "c"}'  # json5 read, keys sorted
    # json5 accepts single quotes and trailing commas; non-ASCII kept.
    assert react_fields("Action: x\nAction Input: {'城市': '北京',}\n").action_input == '{"城市": "北京"}'
    # Unreadable input becomes "", and a missing Action Input slices to the end (minus the added "\n").
    assert react_fields("Action: x\nAction Input: {oops\n").action_input == ""
    assert react_fields("Thought: t\nAction: only_name").action == "only_name"


def test_tool_selection_needs_newline_action_and_same_name() -> None:
    assert selects_tool("Thought: t\nAction:  GET_weather \nAction Input: {}", GOLD)
    assert not selects_tool("Thought: t\nAction: other\nAction Input: {}", GOLD)
    assert not selects_tool("Action: get_weather\nAction Input: {}", GOLD)  # no "\nAction: " (as in Qwen's)
    assert not selects_tool("Final Answer: 20", GOLD)


def test_false_positive_is_any_newline_action() -> None:
    assert calls_tool("Thought: hmm\nAction: get_weather\nAction Input: {}")
    assert not calls_tool("Thought: I know\nFinal Answer: no tool needed")


def test_rouge_l_over_tokenised_sorted_inputs() -> None:
    tok = whitespace().tokenize
    assert input_rouge_l(GOLD, GOLD, tok) == 1.0
    same_args_other_order = 'Thought: t\nAction: get_weather\nAction Input: {"city": "Paris", "unit": "c"}'
    assert input_rouge_l(same_args_other_order, GOLD, tok) == 1.0
    assert input_rouge_l("Thought: t\nAction: get_weather\nAction Input: {bad", GOLD, tok) == 0.0
    # Gold tokens: {"city": "Paris", "unit": "c"} -> 4 tokens; prediction shares 3 in order -> F = 0.75.
    half = 'Thought: t\nAction: get_weather\nAction Input: {"city": "Lyon", "unit": "c"}'
    assert input_rouge_l(half, GOLD, tok) == pytest.approx(0.75)
    chars = list  # a character tokenizer shows the tokenizer is really used
    assert 0.75 < input_rouge_l(half, GOLD, chars) < 1.0


def _model_for(samples, reply_positive, reply_negative) -> FunctionModel:  # type: ignore[no-untyped-def]
    by_key = {json.dumps([m.model_dump() for m in s.messages]): s for s in samples}

    def answer(request: ChatRequest) -> str:
        s = by_key[json.dumps([m.model_dump() for m in request.messages])]
        return reply_positive(s) if s.kind == "positive" else reply_negative(s)

    return FunctionModel(answer)


async def test_gold_on_bfcl_derived_sets_scores_perfectly(bfcl_dir: Path, tmp_path: Path) -> None:
    samples = bfcl_samples(bfcl_dir, limit=30)
    assert {s.kind for s in samples} == {"positive", "negative"}
    assert "Question:" in samples[0].messages[-1].content and samples[0].stop
    model = _model_for(samples, lambda s: s.gold + "Observation: result",
                       lambda s: "Thought: no tool\nFinal Answer: no")
    task = ToolUseTask(model, samples, whitespace(), source="bfcl")
    outcome = await run_bench(task, tmp_path, progress=False)
    summary = task.summarize(outcome.rows)
    assert summary.scores == {SELECTION: 1.0, ROUGE: 1.0, FALSE_POSITIVE: 0.0, NO_FALSE_CALL: 1.0}
    assert any("tokenizer: whitespace" in n for n in summary.notes)
    assert summary.lower_is_better == [FALSE_POSITIVE]


async def test_wrong_tools_and_false_calls_are_counted(bfcl_dir: Path, tmp_path: Path) -> None:
    samples = bfcl_samples(bfcl_dir, limit=10)
    model = _model_for(
        samples,
        lambda s: s.gold.replace("Action: ", "Action: not_").replace('": ', '": "x", "zz": '),
        lambda s: "Thought: try\nAction: something\nAction Input: {}",
    )
    task = ToolUseTask(model, samples, whitespace(), source="bfcl")
    summary = task.summarize((await run_bench(task, tmp_path, progress=False)).rows)
    assert summary.scores[SELECTION] == 0.0
    assert 0.0 < summary.scores[ROUGE] < 1.0
    assert summary.scores[FALSE_POSITIVE] == 1.0 and summary.scores[NO_FALSE_CALL] == 0.0


async def test_qwen_exam_files_are_read_and_scored(tmp_path: Path) -> None:
    pos = tmp_path / "exam_plugin_v1_react_positive.jsonl"
    neg = tmp_path / "exam_plugin_v1_react_negative.jsonl"
    pos.write_text("\n".join(json.dumps({"prompt": f"Q{i}: weather?", "response": GOLD}) for i in range(4)) + "\n")
    neg.write_text(json.dumps({"prompt": "Hi!", "response": "Thought: chat\nFinal Answer: hello"}) + "\n")
    samples = load_qwen_file(pos, "positive") + load_qwen_file(neg, "negative")
    assert samples[0].messages[0].content == "You are a helpful assistant."

    def answer(req: ChatRequest) -> str:
        q = req.messages[-1].content
        if q.startswith("Q0"):
            return "Thought: t\nAction: get_weather\nAction Input: {\"city\": \"Paris\", \"unit\": \"c\"}"
        if q.startswith("Q1"):
            return "Thought: t\nAction: get_weather\nAction Input: {\"city\": \"Lyon\", \"unit\": \"c\"}"
        if q.startswith("Q"):
            return "Final Answer: sunny"
        return "Thought: t\nAction: get_weather\nAction Input: {}"

    task = ToolUseTask(FunctionModel(answer), samples, whitespace(), source="qwen")
    outcome = await run_bench(task, tmp_path / "out", progress=False)
    assert all(r.status == "ok" for r in outcome.rows)
    summary = task.summarize(outcome.rows)
    assert summary.scores[SELECTION] == 0.5
    assert summary.scores[ROUGE] == pytest.approx((1.0 + 0.75) / 4)
    assert summary.scores[FALSE_POSITIVE] == 1.0


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingData, match="missing tool-use positive file"):
        load_qwen_file(tmp_path / "nope.jsonl", "positive")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"response": "x"}\n')
    with pytest.raises(BadData, match=r"line 1 .*prompt"):
        load_qwen_file(bad, "positive")
    with pytest.raises(ConfigError, match="unknown tokenizer 'sentencepiece'"):
        resolve_tokenizer("sentencepiece")
    with pytest.raises(MissingData, match="does not exist"):
        resolve_tokenizer(f"gguf:{tmp_path / 'missing.gguf'}")


@pytest.mark.llama
def test_qwen_gguf_tokenizer_from_the_model_store() -> None:
    from qwenkit.llm.store import DEFAULT_MODEL, ModelStore

    if not ModelStore(progress=False).is_pulled(DEFAULT_MODEL):
        pytest.skip(f"{DEFAULT_MODEL} is not pulled (qwenkit models pull)")
    tok, warning = resolve_tokenizer("store")
    assert warning is None and tok.name.startswith("gguf:")
    pieces = tok.tokenize('{"city": "北京"}')
    assert "".join(pieces) == '{"city": "北京"}'
    assert len(pieces) < len('{"city": "北京"}')  # sub-word pieces, not characters
