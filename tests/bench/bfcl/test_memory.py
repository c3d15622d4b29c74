"""BFCL memory_kv / memory_rec_sum: prerequisite conversations and questions through `qwenkit.Agent` on bfcl-eval's
own memory classes, memory carried over by the wheel's snapshots, answers judged by the official agentic checker."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qwenkit.bench.bfcl.categories import AGENTIC_REFUSALS, MEMORY_RUNNABLE, RUNNABLE, resolve_categories
from qwenkit.bench.bfcl.memory import MemoryEntry, load_memory, memory_system_prompt, score_answer
from qwenkit.bench.bfcl.package import load
from qwenkit.bench.bfcl.task import BfclTask
from qwenkit.bench.runner import run_bench
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatRequest
from qwenkit.testing import FunctionModel
from qwenkit.types import Completion, SystemMessage, ToolMessage, UserMessage
from tests.bench.bfcl.helpers import full_data_dir, reply


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return full_data_dir()


@pytest.fixture(scope="module")
def entries(data_dir: Path) -> dict[str, list[MemoryEntry]]:
    return {c: load_memory(data_dir, c) for c in MEMORY_RUNNABLE}


# ------------------------------------------------------------------------------ data as the official loader

@pytest.mark.parametrize("category", MEMORY_RUNNABLE)
def test_entries_are_those_of_the_official_loader(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], category: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    utils = load(data_dir, "utils")
    monkeypatch.setattr(utils, "LOCK_DIR", tmp_path)  # its file locks go here, not into the data folder
    official = utils.load_dataset_entry(category, include_prereq=True, include_language_specific_hint=False)
    questions = [e for e in official if "prereq" not in e["id"]]
    prereqs = {e["id"]: e for e in official if "prereq" in e["id"]}
    ours = entries[category]
    assert [e.id for e in ours] == [q["id"] for q in questions] and len(ours) == 155
    for entry, q in zip(ours, questions, strict=True):
        assert entry.turns == q["question"] and entry.functions == q["function"]
        assert [c.id for c in entry.prereqs] == q["depends_on"] and entry.backend == q["involved_classes"][0]
        for conversation in entry.prereqs:
            assert conversation.turns == prereqs[conversation.id]["question"]
    assert sum(e.first_of_scenario for e in ours) == 5


def _official_memory_prompt(data_dir: Path) -> Callable[..., Any]:
    """``model_handler.utils.add_memory_instruction_system_prompt``, its source taken from the wheel and run with
    the wheel's prompts (the module itself imports the model handlers' parsers: tree_sitter, tenacity)."""
    path = Path(str(load(data_dir, "model_handler").__file__)).parent / "utils.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef)
                and n.name == "add_memory_instruction_system_prompt")
    namespace = dict(vars(load(data_dir, "constants.default_prompts")))
    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
    return namespace["add_memory_instruction_system_prompt"]


def test_memory_system_prompt_is_the_official_one(data_dir: Path, entries: dict[str, list[MemoryEntry]]) -> None:
    official = _official_memory_prompt(data_dir)
    for category, items in entries.items():
        entry = items[0]
        backend = load(data_dir, "constants.executable_backend_config").CLASS_FILE_PATH_MAPPING[entry.backend]
        memory = getattr(load(data_dir, backend.removeprefix("bfcl_eval.")), entry.backend)()
        for content in ("", "kept"):  # empty memory, and memory with content
            if category == "memory_kv" and content:
                memory.core_memory_add("note", content)
            elif content:
                memory.memory_append(content)
            for turns in (entry.turns, entry.prereqs[0].turns):  # with and without a system message of its own
                expected = official(json.loads(json.dumps(turns)), category, entry.scenario, memory)
                ours = memory_system_prompt(data_dir, turns, category, entry.scenario, memory)
                assert ours == expected and (content in ours[0][0]["content"])


# ------------------------------------------------------------------------------ a model that uses its memory

class MemoryModel:
    """In the first prerequisite conversation it stores every answer of its scenario (kv: archival memory;
    rec_sum: memory lines); each prerequisite conversation bumps a counter in the memory shown in context.
    Asked a question, it reads the answer back (kv: ``archival_memory_retrieve``; rec_sum: the memory in its
    system prompt) and answers in BFCL's format. ``wrong`` answers "I do not know" instead."""

    def __init__(self, data_dir: Path, items: list[MemoryEntry], fmt: str, *, wrong: bool = False) -> None:
        prompts = load(data_dir, "constants.default_prompts")
        self.settings: dict[str, str] = dict(prompts.MEMORY_AGENT_SETTINGS)
        self.index: dict[tuple[str, str], int] = {}
        self.answers: dict[str, list[str]] = {}
        for e in items:
            text = e.turns[0][-1]["content"]
            answers = self.answers.setdefault(e.scenario, [])
            if (e.scenario, text) not in self.index:
                self.index[(e.scenario, text)] = len(answers)
                answers.append(e.ground_truth[0])
        self.kv = items[0].category == "memory_kv"
        self.fmt, self.wrong = fmt, wrong
        self.model = FunctionModel(self.answer, name="memory-replay")

    def answer(self, request: ChatRequest) -> str | Completion:
        system = next(str(m.content) for m in request.messages if isinstance(m, SystemMessage))
        scenario = next(s for s, text in self.settings.items() if text in system)
        users = [m for m in request.messages if isinstance(m, UserMessage)]
        last = request.messages[-1]
        if "For your final answer to the user" in system:  # the question
            n = self.index[(scenario, str(users[0].content))]
            if self.wrong:
                return "{'answer': 'I do not know', 'context': 'I do not know'}"
            if self.kv:
                # The tool result, wherever the format puts it (a tool message, or a user message).
                after = " ".join(str(m.content) for m in request.messages[request.messages.index(users[0]) + 1:])
                if '{"value": ' not in after:
                    return reply(self.fmt, [("archival_memory_retrieve", {"key": f"q_{n}"})])
                value = json.JSONDecoder().raw_decode(after[after.index('{"value": '):])[0]["value"]
            else:
                line = re.search(rf"^q_{n}: (.*)$", system, re.M)
                assert line is not None, "the memory in the system prompt lacks the answer"
                value = line.group(1)
            return f"{{'answer': '{value}', 'context': 'from my memory'}}"
        if isinstance(last, ToolMessage) or len(users) > 1:
            return "Noted."
        # First turn of a prerequisite conversation.
        if self.kv:
            found = re.search(r'"conversations": "(\d+)"', system)
            if found is None:
                calls = [("core_memory_add", {"key": "conversations", "value": "1"})]
                calls += [("archival_memory_add", {"key": f"q_{n}", "value": a})
                          for n, a in enumerate(self.answers[scenario])]
                return reply(self.fmt, calls)
            return reply(self.fmt, [("core_memory_replace", {"key": "conversations",
                                                             "value": str(int(found.group(1)) + 1)})])
        if "q_0: " not in system:
            text = "".join(f"q_{n}: {a}\n" for n, a in enumerate(self.answers[scenario]))
            return reply(self.fmt, [("memory_append", {"text": text + "[conversation]\n"})])
        return reply(self.fmt, [("memory_append", {"text": "[conversation]\n"})])


async def _run(data_dir: Path, category: str, items: list[MemoryEntry], tmp: Path, fmt: str = "native",
               **kwargs: Any) -> tuple[dict[str, Any], MemoryModel]:
    policy = MemoryModel(data_dir, items, fmt, **kwargs)
    task = BfclTask(policy.model, fmt, data_dir, [category], ids=[e.id for e in items])
    outcome = await run_bench(task, tmp, concurrency=8, progress=False)
    return {r.id: r for r in outcome.rows}, policy


@pytest.mark.parametrize("category", MEMORY_RUNNABLE)
async def test_a_model_that_keeps_the_answers_in_memory_scores_valid_on_all_155(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], category: str, tmp_path: Path,
) -> None:
    items = entries[category]
    rows, _ = await _run(data_dir, category, items, tmp_path)
    assert len(rows) == 155
    for entry in items:
        row = rows[entry.id]
        assert row.status == "ok", row.error
        assert row.score["valid"] is True, (row.id, row.score)
        # The question started from the memory the last prerequisite conversation left, and shows it.
        memory = row.result["memory"]
        count = (memory["core_memory"]["conversations"] if category == "memory_kv"
                 else str(memory["memory"].count("[conversation]")))
        assert count == str(len(entry.prereqs)) and row.result["prereq_ids"] == [c.id for c in entry.prereqs]
        assert ("prereqs" in row.result) is entry.first_of_scenario
        if entry.first_of_scenario:
            chain = row.result["prereqs"]
            assert [c["id"] for c in chain] == row.result["prereq_ids"] and chain[-1]["memory_after"] == memory
            assert chain[0]["memory_after"] != chain[1]["memory_after"]


async def test_replay_in_another_format_and_in_prompt_mode(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], tmp_path: Path,
) -> None:
    items = [e for e in entries["memory_kv"] if e.scenario == "healthcare"][:3]
    rows, _ = await _run(data_dir, "memory_kv", items, tmp_path / "nous", fmt="nous")
    assert all(r.score["valid"] for r in rows.values()), [r.score for r in rows.values()]
    policy = MemoryModel(data_dir, items, "pythonic")
    task = BfclTask(policy.model, "pythonic", data_dir, ["memory_kv"], ids=[e.id for e in items], mode="prompt")
    outcome = await run_bench(task, tmp_path / "prompt", progress=False)
    assert all(r.score["valid"] for r in outcome.rows), [r.score for r in outcome.rows]
    # BFCL's prompt-mode system prompt first, then the memory prompt with the memory the question starts from.
    system = str(policy.model.requests[-1].messages[0].content)
    assert system.index("You are an expert in composing functions") < system.index(policy.settings["healthcare"])
    assert '"conversations": "' in system and outcome.rows[0].result["system"] in system


async def test_show_renders_the_prerequisites_and_the_memory(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], tmp_path: Path,
) -> None:
    from rich.console import Console

    from qwenkit.bench.bfcl.show import render_row

    entry = next(e for e in entries["memory_kv"] if e.scenario == "notetaker")
    rows, _ = await _run(data_dir, "memory_kv", [entry], tmp_path)
    console = Console(record=True, width=200)
    render_row(rows[entry.id], console)
    text = console.export_text()
    assert f"prerequisite conversation {entry.prereqs[-1].id}" in text and "memory at the question" in text
    assert "archival_memory_retrieve" in text and "PASS" in text


async def test_the_prerequisites_run_once_per_scenario(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], tmp_path: Path,
) -> None:
    items = [e for e in entries["memory_rec_sum"] if e.scenario == "notetaker"][:6]
    _, policy = await _run(data_dir, "memory_rec_sum", items, tmp_path)
    firsts = [r for r in policy.model.requests if sum(isinstance(m, UserMessage) for m in r.messages) == 1
              and "For your final answer" not in str(r.messages[0].content)
              and not isinstance(r.messages[-1], ToolMessage)]
    assert len(firsts) == len(items[0].prereqs)


async def test_prepare_runs_every_chain_before_the_questions(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], tmp_path: Path,
) -> None:
    items = [e for e in entries["memory_rec_sum"] if e.id.endswith(("-0", "-1"))]
    scenarios = {e.scenario for e in items}
    assert len(scenarios) == 5
    policy = MemoryModel(data_dir, items, "native")
    task = BfclTask(policy.model, "native", data_dir, ["memory_rec_sum"], ids=[e.id for e in items])
    await task.prepare(task.records())
    chains = len(policy.model.requests)
    assert chains >= sum(len(c.turns) for s in scenarios for c in next(e for e in items if e.scenario == s).prereqs)
    outcome = await run_bench(task, tmp_path, progress=False)
    assert all(r.score["valid"] for r in outcome.rows) and len(outcome.rows) == len(items)
    # The questions only: one answer each (rec_sum reads its memory from the system prompt).
    assert len(policy.model.requests) == chains + len(items)


# ------------------------------------------------------------------------------ failing answers

async def test_a_wrong_answer_fails_with_the_official_checker_reason(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], tmp_path: Path,
) -> None:
    entry = entries["memory_kv"][0]
    rows, _ = await _run(data_dir, "memory_kv", [entry], tmp_path, wrong=True)
    score = rows[entry.id].score
    official = load(data_dir, "eval_checker.agentic_eval.agentic_checker").agentic_checker(
        "{'answer': 'I do not know', 'context': 'I do not know'}", entry.ground_truth)
    assert score["valid"] is official["valid"] is False
    assert score["reason"] == official["error_type"] == "agentic:answer_not_found"
    assert score["detail"] == official["error_message"]


@pytest.mark.parametrize(("steps", "reason"), [
    ([{"calls": [{"name": "memory_retrieve"}]}], "agentic:no_last_message"),
    ([{"calls": [{"name": "memory_retrieve"}]}, {"calls": [], "text": ""}], "agentic:no_last_message"),
    ([{"calls": [], "text": "It is Michael."}], "ok"),
    ([{"calls": [], "text": "It is Michaela."}], "agentic:answer_not_found"),  # whole words only
])
def test_the_last_step_without_calls_is_judged(data_dir: Path, entries: dict[str, list[MemoryEntry]],
                                               steps: list[dict[str, Any]], reason: str) -> None:
    entry = entries["memory_rec_sum"][0]
    assert entry.ground_truth == ["Michael"]
    assert score_answer(data_dir, entry, {"turns": [{"steps": steps}]})["reason"] == reason
    assert score_answer(data_dir, entry, {"turns": []})["reason"] == "agentic:inference_error"


async def test_a_failing_prerequisite_makes_the_scenarios_questions_error_rows(
    data_dir: Path, entries: dict[str, list[MemoryEntry]], tmp_path: Path,
) -> None:
    from qwenkit.errors import ModelError

    def fail(request: ChatRequest) -> str:
        raise ModelError("server down")

    items = entries["memory_kv"][:2]
    task = BfclTask(FunctionModel(fail), "native", data_dir, ["memory_kv"], ids=[e.id for e in items])
    outcome = await run_bench(task, tmp_path, progress=False)
    assert [r.status for r in outcome.rows] == ["error", "error"]
    assert all("prerequisite conversation of memory_kv/customer failed" in (r.error or "") for r in outcome.rows)


# ------------------------------------------------------------------------------ what cannot run, and why

@pytest.mark.parametrize(("name", "words"), [
    ("memory_vector", ("all-MiniLM-L6-v2", "sentence-transformers", "cannot run offline")),
    ("web_search_base", ("SerpAPI", "network", "cannot run offline")),
    ("web_search_no_snippet", ("SerpAPI", "network", "cannot run offline")),
    ("web_search", ("SerpAPI", "network")),
    ("memory", ("all-MiniLM-L6-v2", "--categories memory_kv,memory_rec_sum")),
    ("agentic", ("SerpAPI", "--categories memory_kv,memory_rec_sum")),
])
def test_what_cannot_run_is_refused_with_its_reason(name: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_categories([name])
    text = str(err.value)
    assert text == AGENTIC_REFUSALS[name] and "\n" not in text
    assert all(w in text for w in words), text


def test_memory_kv_and_rec_sum_run_and_are_part_of_all() -> None:
    assert resolve_categories(["memory_rec_sum", "memory_kv"]) == ["memory_kv", "memory_rec_sum"]
    assert set(MEMORY_RUNNABLE) <= set(resolve_categories(["all"])) == set(RUNNABLE)
