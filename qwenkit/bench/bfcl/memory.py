"""BFCL memory categories (``memory_kv``, ``memory_rec_sum``): prerequisite conversations, then one question.

How bfcl-eval 2026.3.23 runs them (``utils.process_memory_test_case``, ``base_handler.inference_multi_turn_*``,
``memory_api_metaclass.MemoryAPI._prepare_snapshot``), and how qwenkit follows it:

- every scenario (customer, student, ...) has prerequisite conversations
  (``data/memory_prereq_conversation/memory_<scenario>.json``), ids ``memory_<backend>_prereq_<n>-<scenario>-<n>``,
  each depending on the ones before; every question of the scenario depends on all of them;
- each conversation runs as a multi-turn entry (`qwenkit.bench.bfcl.multiturn.run_entry`, i.e. `qwenkit.Agent`)
  on one instance of the wheel's memory class (``MemoryAPI_kv`` / ``MemoryAPI_rec_sum``), whose tools are
  ``multi_turn_func_doc/memory_<backend>.json``; the instance loads the scenario's latest snapshot
  (``<scenario>_final.json``; the first prerequisite starts empty) and, after a prerequisite conversation,
  the harness calls its ``_flush_memory_to_local_file`` — the wheel's own code writes and reads the snapshots,
  in a folder of the task;
- the first turn gets the official memory system prompt (``add_memory_instruction_system_prompt``: the
  scenario's setting and the memory content the instance dumps) in front of its own system text; questions
  (not prerequisites) also carry ``ADDITIONAL_SYSTEM_PROMPT_FOR_AGENTIC_RESPONSE_FORMAT``;
- a question's memory changes are not saved: every question of a scenario starts from the memory the last
  prerequisite left. The prerequisite chain of a (category, scenario) runs once per task and is shared.

Scoring (``eval_runner._evaluate_single_agentic_entry``, ported: it needs a model handler): the question must
have one turn; the text of its last step without calls is given to the official ``agentic_checker`` (loaded from
the wheel), which looks for one of the ground-truth answers in it after its normalisation.

``memory_vector`` is not run: its class loads the ``all-MiniLM-L6-v2`` sentence-transformers model (a download)
and faiss at import. The memory classes import ``filelock`` and ``overrides`` (``bfcl_eval.utils``), and
``memory_kv`` ``rank_bm25``; a missing one is reported with its pip name before any request.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenkit.bench.bfcl.categories import is_memory
from qwenkit.bench.bfcl.data import PREFIX
from qwenkit.bench.bfcl.executor import ApiSession
from qwenkit.bench.bfcl.multiturn import MAX_DETAIL_CHARS, MultiTurnEntry, _func_docs, run_entry
from qwenkit.bench.bfcl.package import load, package_root
from qwenkit.bench.datafile import parse_jsonl, read_data_file, short
from qwenkit.bench.errors import BadData
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats.base import PromptFormat


@dataclass
class Conversation:
    """One prerequisite conversation: its official id and its turns (each a list of messages)."""

    id: str
    turns: list[list[dict[str, str]]]


@dataclass
class MemoryEntry:
    """One memory question with what running and scoring it needs.

    Attributes:
        id: Official id, e.g. ``memory_kv_0-customer-0``.
        category: ``memory_kv`` or ``memory_rec_sum``.
        scenario: The scenario, e.g. ``customer``.
        backend: The memory class, e.g. ``MemoryAPI_kv``.
        turns: The question's turns (one), with the agentic response-format system message first.
        functions: The memory class's function docs.
        ground_truth: The acceptable answers.
        prereqs: The scenario's prerequisite conversations, in order.
        first_of_scenario: The scenario's first question run (`BfclTask.records` sets it after selecting):
            its row carries the prerequisite trajectories.
    """

    id: str
    category: str
    scenario: str
    backend: str
    turns: list[list[dict[str, str]]]
    functions: list[dict[str, Any]]
    ground_truth: list[str]
    prereqs: list[Conversation]
    first_of_scenario: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def _data(data_dir: Path) -> Path:
    return package_root(data_dir) / "bfcl_eval" / "data"


def _turns(obj: Any, where: str) -> list[list[dict[str, str]]]:
    try:
        return [[{"role": str(m["role"]), "content": str(m["content"])} for m in turn] for turn in obj]
    except (KeyError, TypeError) as exc:
        raise BadData(f"{where} has malformed turns ({type(exc).__name__}: {exc}).") from exc


def load_memory(data_dir: Path, category: str) -> list[MemoryEntry]:
    """Read a memory category's questions, answers and prerequisite conversations from the wheel's data.

    Ids, order, system prompts and tools are those of ``utils.load_dataset_entry`` (checked by the tests).
    The memory class is imported here, so that a missing dependency is reported before any request.

    Raises:
        MissingData: The bfcl-eval package, a file, or a dependency of the memory class is missing.
        BadData: A file is malformed, or a question has no answer.
    """
    if not is_memory(category):
        raise BadData(f"{short(category)!r} is not a memory category qwenkit runs.")
    backend_name = category.removeprefix("memory_")
    backend = f"MemoryAPI_{backend_name}"
    config = load(data_dir, "constants.executable_backend_config")
    load(data_dir, config.CLASS_FILE_PATH_MAPPING[backend].removeprefix("bfcl_eval."))
    prompts = load(data_dir, "constants.default_prompts")
    scenarios: list[str] = list(load(data_dir, "constants.category_mapping").MEMORY_SCENARIO_NAME)
    data = _data(data_dir)
    qpath, apath = data / f"{PREFIX}_memory.json", data / "possible_answer" / f"{PREFIX}_memory.json"
    gold: dict[str, list[str]] = {}
    for n, obj in parse_jsonl(read_data_file(apath, "BFCL answer file"), str(apath)):
        gt = obj.get("ground_truth")
        if not isinstance(obj.get("id"), str) or not isinstance(gt, list) or not all(isinstance(a, str) for a in gt):
            raise BadData(f"{apath} line {n} is not a BFCL memory answer.")
        gold[obj["id"].replace("memory", category, 1)] = gt
    prereqs: dict[str, list[Conversation]] = {}
    for scenario in scenarios:
        ppath = data / "memory_prereq_conversation" / f"memory_{scenario}.json"
        prereqs[scenario] = [
            Conversation(str(obj.get("id", "")).replace("memory", category, 1),
                         _turns(obj.get("question"), f"{ppath} line {n}"))
            for n, obj in parse_jsonl(read_data_file(ppath, "BFCL memory conversation file"), str(ppath))]
    functions = _func_docs(data_dir, backend)
    out: list[MemoryEntry] = []
    seen: set[str] = set()
    for n, obj in parse_jsonl(read_data_file(qpath, "BFCL data file"), str(qpath)):
        scenario = obj.get("scenario")
        if not isinstance(obj.get("id"), str) or scenario not in prereqs:
            raise BadData(f"{qpath} line {n} is not a BFCL memory question (id or scenario).")
        entry_id = obj["id"].replace("memory", category, 1)
        turns = _turns(obj.get("question"), f"{qpath} line {n}")
        if len(turns) != 1 or not turns[0]:
            raise BadData(f"{qpath} line {n}: a memory question has one turn.")
        if entry_id not in gold:
            raise BadData(f"{qpath}: question {short(entry_id)!r} has no answer in {apath}.")
        # ``process_agentic_test_case``: the response-format instruction, as a system message first.
        turns[0].insert(0, {"role": "system", "content": prompts.ADDITIONAL_SYSTEM_PROMPT_FOR_AGENTIC_RESPONSE_FORMAT})
        out.append(MemoryEntry(entry_id, category, scenario, backend, turns, copy.deepcopy(functions),
                               gold[entry_id], prereqs[scenario], scenario not in seen, obj))
        seen.add(scenario)
    return out


def memory_system_prompt(data_dir: Path, turns: Sequence[Sequence[Mapping[str, str]]], category: str,
                         scenario: str, memory: Any) -> list[list[dict[str, str]]]:
    """``model_handler.utils.add_memory_instruction_system_prompt`` (ported: its module needs the handlers' deps).

    The official template with the scenario's setting and the memory content the instance dumps, put in
    front of the first turn's system message (after a blank line), or as a new first system message.
    """
    prompts = load(data_dir, "constants.default_prompts")
    template = (prompts.MEMORY_BACKEND_INSTRUCTION_UNIFIED if "rec_sum" in category
                else prompts.MEMORY_BACKEND_INSTRUCTION_CORE_ARCHIVAL)
    system = template.format(scenario_setting=prompts.MEMORY_AGENT_SETTINGS[scenario],
                             memory_content=memory._dump_core_memory_to_context())
    out = [[dict(m) for m in turn] for turn in turns]
    if out[0] and out[0][0]["role"] == "system":
        out[0][0]["content"] = system + "\n\n" + out[0][0]["content"]
    else:
        out[0].insert(0, {"role": "system", "content": system})
    return out


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class MemoryRunner:
    """Runs memory entries for one task: the snapshot folder, and each scenario's prerequisites run once.

    Args:
        data_dir: The fetched BFCL folder.
        model: The model.
        fmt: The prompt format.
        sampling: Sampling settings.
        prompt_mode: BFCL's prompt mode (see `run_entry`).
    """

    def __init__(self, data_dir: Path, model: ChatModel, fmt: PromptFormat, sampling: Sampling, *,
                 prompt_mode: bool = False) -> None:
        self.data_dir, self.model, self.fmt, self.sampling, self.prompt_mode = (
            Path(data_dir), model, fmt, sampling, prompt_mode)
        # The wheel's memory classes write their snapshots under ``model_result_dir``: a folder of this task.
        self.result_dir = Path(tempfile.mkdtemp(prefix="qwenkit-bfcl-memory-"))
        weakref.finalize(self, shutil.rmtree, self.result_dir, True)
        self._chains: dict[tuple[str, str], asyncio.Task[list[dict[str, Any]]]] = {}

    def session(self, entry: MemoryEntry, test_id: str) -> ApiSession:
        """The entry's memory instance, loaded by the wheel (``populate_initial_settings_for_memory_test_cases``)."""
        config = {entry.backend: {"model_result_dir": self.result_dir, "scenario": entry.scenario,
                                  "test_id": test_id, "test_category": test_id.rsplit("_", 1)[0]}}
        return ApiSession(self.data_dir, [entry.backend], config)

    async def _conversation(self, entry: MemoryEntry, test_id: str, turns: list[list[dict[str, str]]],
                            session: ApiSession) -> dict[str, Any]:
        memory = session.instances[entry.backend]
        turns = memory_system_prompt(self.data_dir, turns, entry.category, entry.scenario, memory)
        conversation = MultiTurnEntry(test_id, entry.category, turns, {}, [entry.backend], entry.functions, {}, [])
        trajectory = await run_entry(self.model, self.fmt, conversation, self.data_dir, self.sampling,
                                     prompt_mode=self.prompt_mode, session=session)
        return {"id": test_id, "system": turns[0][0]["content"], **trajectory}

    async def _prereqs(self, entry: MemoryEntry) -> list[dict[str, Any]]:
        out = []
        for conversation in entry.prereqs:
            session = self.session(entry, conversation.id)
            record = await self._conversation(entry, conversation.id, conversation.turns, session)
            memory = session.instances[entry.backend]
            # As ``inference_multi_turn_*``: flushed after the conversation, force-terminated or not.
            memory._flush_memory_to_local_file()
            record["memory_after"] = _read_json(memory.snapshot_folder / f"{conversation.id}.json")
            out.append(record)
        return out

    async def prereqs(self, entry: MemoryEntry) -> list[dict[str, Any]]:
        """Run the entry's prerequisite conversations once per (category, scenario); their trajectories.

        Shielded: a question that times out while waiting does not cancel the chain the others wait on.

        Raises:
            ModelError: A prerequisite conversation failed (every question of the scenario is then an error).
        """
        key = (entry.category, entry.scenario)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = asyncio.ensure_future(self._prereqs(entry))
        try:
            return await asyncio.shield(chain)
        except ModelError as exc:
            raise ModelError(f"a prerequisite conversation of {entry.category}/{entry.scenario} failed: {exc}") from exc

    async def prepare(self, entries: Sequence[MemoryEntry]) -> None:
        """Run the prerequisite chains of ``entries`` all at once (a failed one fails its questions in `run`)."""
        await asyncio.gather(*(self.prereqs(e) for e in entries), return_exceptions=True)

    async def run(self, entry: MemoryEntry) -> dict[str, Any]:
        """Run the prerequisites (once), then the question on a memory loaded from their final snapshot.

        Returns:
            ``turns`` (the question's trajectory), ``system`` (its first system prompt), ``memory`` (the snapshot
            it started from), ``prereq_ids``, and, for the scenario's first question, ``prereqs`` (their
            trajectories and the memory after each).
        """
        prereqs = await self.prereqs(entry)
        session = self.session(entry, entry.id)
        memory = session.instances[entry.backend]
        started_from = _read_json(memory.latest_snapshot_file)
        record = await self._conversation(entry, entry.id, entry.turns, session)
        record["memory"] = started_from
        record["prereq_ids"] = [c.id for c in entry.prereqs]
        if entry.first_of_scenario:
            record["prereqs"] = prereqs
        return record


# ------------------------------------------------------------------------------------------- scoring

def _clip(obj: Any) -> Any:
    text = json.dumps(obj, default=str, ensure_ascii=False)
    return obj if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + " ..."


def final_text(result: Mapping[str, Any]) -> str | None:
    """The text of the last step without calls of the question's only turn (``None``: no such step)."""
    last = None
    for step in result["turns"][0].get("steps", []):
        if not step.get("calls"):
            last = step.get("text", step.get("raw_text", ""))
    return last


def score_answer(data_dir: Path, entry: MemoryEntry, result: Mapping[str, Any]) -> dict[str, Any]:
    """The official verdict on a question's answer (``eval_runner._evaluate_single_agentic_entry``).

    A trajectory of other than one turn is ``agentic:inference_error``; one whose turn has no step without
    calls, or whose last such step is empty, ``agentic:no_last_message``; otherwise the official
    ``agentic_checker`` decides (``agentic:answer_not_found`` when no ground-truth answer is in the text).
    """
    checker = load(data_dir, "eval_checker.agentic_eval.agentic_checker")
    turns = result.get("turns")
    if not isinstance(turns, list) or len(turns) != 1:
        return {"value": 0.0, "valid": False, "reason": "agentic:inference_error", "detail":
                "Error during inference phase. Model did not output a list of model responses.", "diff": {}}
    text = final_text(result)
    if not text:
        return {"value": 0.0, "valid": False, "reason": "agentic:no_last_message",
                "detail": "Cannot find the last chat message that is not a function call.", "diff": {}}
    verdict: dict[str, Any] = checker.agentic_checker(text, list(entry.ground_truth))
    if verdict["valid"]:
        return {"value": 1.0, "valid": True, "reason": "ok", "detail": "", "diff": {}}
    return {"value": 0.0, "valid": False, "reason": verdict.get("error_type", "agentic:unknown"),
            "detail": str(verdict.get("error_message", "")), "diff": _clip(verdict.get("details") or {})}


__all__ = [
    "Conversation",
    "MemoryEntry",
    "MemoryRunner",
    "final_text",
    "load_memory",
    "memory_system_prompt",
    "score_answer",
]
