"""BFCL multi-turn: each entry is one conversation through `qwenkit.Agent` against bfcl-eval's own API classes.

Inference, as the official harness (``base_handler.inference_multi_turn_FC``) does it:

- the tools are the function docs of the entry's ``involved_classes`` (``multi_turn_func_doc/``), less
  ``excluded_function`` and less the held-back ``missed_function`` ones; a held-back function is added at
  its turn, whose user message is then BFCL's ``I have updated some more functions you can choose from.
  What about now?``;
- turns are fed in order as user messages; a turn ends on a reply without calls, or is force-terminated
  after `STEP_LIMIT` steps with calls (the entry then fails, ``multi_turn:force_terminated``);
- every call runs, in the order written (`ApiTool.sequential`), on the entry's instances (`ApiSession`).

Scoring (`score_entry`) replays the recorded calls by name on fresh instances and the ground truth on
separate ones, turn by turn, and applies the official ``state_checker`` and ``response_checker`` (imported
from the wheel), then the official ``multi_turn_irrelevance_checker`` (a turn whose ground truth is empty
must make no call). The verdict names the turn and the official error type.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenkit._untrusted import cap_text
from qwenkit.bench.bfcl.data import PACKAGE_DIR, answer_file, question_file
from qwenkit.bench.bfcl.executor import ApiSession, ParsedCall, parse_call
from qwenkit.bench.bfcl.package import load, package_root
from qwenkit.bench.bfcl.schema import to_tool_spec, with_language_hints
from qwenkit.bench.datafile import parse_jsonl, read_data_file, short
from qwenkit.bench.errors import BadData
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats.base import PromptFormat
from qwenkit.llm.formats.pythonic import system_prompt
from qwenkit.tools.base import Tool, ToolContext

STEP_LIMIT = 20
"""BFCL's ``MAXIMUM_STEP_LIMIT``: steps with calls after which a turn is force-terminated."""
ADDED_FUNCTIONS_PROMPT = "I have updated some more functions you can choose from. What about now?"
"""BFCL's ``DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC``."""
MAX_OBSERVATION_CHARS = 20_000
MAX_DETAIL_CHARS = 4_000


@dataclass
class MultiTurnEntry:
    """One multi-turn entry with what running and scoring it needs.

    Attributes:
        id: BFCL id, e.g. ``multi_turn_base_0``.
        category: Its category.
        turns: Per turn, the user messages (empty for a miss_func turn that adds functions).
        initial_config: Class name → scenario.
        involved_classes: Classes whose instances the calls run on.
        functions: Function docs offered from the first turn.
        added: Turn index → function docs added at that turn (miss_func).
        ground_truth: Per turn, the official calls as strings.
    """

    id: str
    category: str
    turns: list[list[dict[str, str]]]
    initial_config: dict[str, Any]
    involved_classes: list[str]
    functions: list[dict[str, Any]]
    added: dict[int, list[dict[str, Any]]]
    ground_truth: list[list[str]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def long_context(self) -> bool:
        return "long_context" in self.category


def _func_docs(data_dir: Path, class_name: str) -> list[dict[str, Any]]:
    backend = load(data_dir, "constants.executable_backend_config")
    name = backend.MULTI_TURN_FUNC_DOC_FILE_MAPPING.get(class_name)
    if name is None:
        raise BadData(f"unknown BFCL API class {short(class_name)!r}.")
    path = package_root(data_dir) / "bfcl_eval" / "data" / "multi_turn_func_doc" / name
    return [obj for _, obj in parse_jsonl(read_data_file(path, "BFCL function doc file"), str(path))]


def load_multi_turn(data_dir: Path, category: str) -> list[MultiTurnEntry]:
    """Read a multi-turn category's entries and ground truth (joined by id).

    Raises:
        MissingData: A file or the bfcl-eval package is missing.
        BadData: A file is malformed.
    """
    qpath, apath = question_file(data_dir, category), answer_file(data_dir, category)
    gold: dict[str, list[list[str]]] = {}
    for n, obj in parse_jsonl(read_data_file(apath, "BFCL answer file"), str(apath)):
        gt = obj.get("ground_truth")
        if not isinstance(obj.get("id"), str) or not isinstance(gt, list) or not all(
                isinstance(t, list) and all(isinstance(c, str) for c in t) for t in gt):
            raise BadData(f"{apath} line {n} is not a BFCL multi-turn answer.")
        gold[obj["id"]] = gt
    docs: dict[str, list[dict[str, Any]]] = {}
    out: list[MultiTurnEntry] = []
    for n, obj in parse_jsonl(read_data_file(qpath, "BFCL data file"), str(qpath)):
        try:
            entry_id: str = obj["id"]
            turns = [[{"role": str(m["role"]), "content": str(m["content"])} for m in t] for t in obj["question"]]
            classes = [str(c) for c in obj["involved_classes"]]
            config = dict(obj.get("initial_config") or {})
            excluded = set(obj.get("excluded_function") or [])
            missed = {int(k): list(v) for k, v in (obj.get("missed_function") or {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadData(f"{qpath} line {n} is not a BFCL multi-turn entry ({type(exc).__name__}: {exc}).") from exc
        if entry_id not in gold:
            raise BadData(f"{qpath}: entry {short(entry_id)!r} has no ground truth in {apath}.")
        functions: list[dict[str, Any]] = []
        for c in classes:
            if c not in docs:
                docs[c] = _func_docs(data_dir, c)
            functions += docs[c]
        held = {name for names in missed.values() for name in names}
        added = {turn: [f for f in functions if f["name"] in names] for turn, names in missed.items()}
        offered = [f for f in functions if f["name"] not in excluded and f["name"] not in held]
        if len(gold[entry_id]) != len(turns):
            raise BadData(f"{apath}: {short(entry_id)!r} has {len(gold[entry_id])} ground-truth turns for "
                          f"{len(turns)} question turns.")
        out.append(MultiTurnEntry(entry_id, category, turns, config, classes, offered, added, gold[entry_id], obj))
    return out


# ------------------------------------------------------------------------------------------- inference

class ApiTool(Tool):
    """One BFCL API function as a qwenkit tool, executed by name on the entry's `ApiSession`.

    ``sequential``: the functions share the instances' state, so a step's calls run in the order written.
    """

    sequential = True

    def __init__(self, function: Mapping[str, Any], session: ApiSession) -> None:
        self.spec = to_tool_spec(dict(function))
        self.session = session

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        return cap_text(self.session.execute(self.spec.name, args), MAX_OBSERVATION_CHARS, "result")


async def run_entry(
    model: ChatModel, fmt: PromptFormat, entry: MultiTurnEntry, data_dir: Path, sampling: Sampling, *,
    prompt_mode: bool = False, session: ApiSession | None = None,
) -> dict[str, Any]:
    """Run one entry through `qwenkit.Agent`; return its trajectory (per turn, per step: text, calls, results).

    Args:
        model: The model.
        fmt: The prompt format.
        entry: The entry.
        data_dir: The fetched BFCL folder.
        sampling: Sampling settings.
        prompt_mode: BFCL's prompt mode: its system prompt with the first turn's function docs, added
            functions written into the user turn (``str`` of their docs, then the official sentence).
        session: Run the calls on these instances (default: fresh ones from the entry's initial config);
            the memory categories pass theirs, to snapshot the memory afterwards.
    """
    from qwenkit.agents.agent import Agent
    from qwenkit.agents.events import AssistantTurn, RunFinished, ToolResultEvent

    session = session or ApiSession(data_dir, entry.involved_classes, entry.initial_config,
                                    long_context=entry.long_context)
    # BFCL adds the language note to the docs offered from the start, not to the held-back ones.
    functions = with_language_hints(entry.functions, entry.category)
    history: list[Any] = []
    turns: list[dict[str, Any]] = []
    for index, messages in enumerate(entry.turns):
        if index in entry.added:
            functions += entry.added[index]
        prompt = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
        if not prompt:
            added = entry.added.get(index, [])
            prompt = f"{added}\n{ADDED_FUNCTIONS_PROMPT}" if prompt_mode else ADDED_FUNCTIONS_PROMPT
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        if prompt_mode and index == 0:
            system = system_prompt(functions) + (f"\n\n{system}" if system else "")
        agent = Agent(model, tools=[ApiTool(f, session) for f in functions], format=fmt, system=system,
                      max_steps=STEP_LIMIT + 1, sampling=sampling, final_answer_at_max_steps=False,
                      # As the official harness: every call runs, and an answer (empty or not) ends the turn.
                      repeated_call_guard=False, retry_empty_answer=False, name="bfcl")
        steps: list[dict[str, Any]] = []
        by_id: dict[str, dict[str, Any]] = {}
        ended = "answer"
        # Not `async with agent`: closing an agent closes its model, which the other entries share.
        async for event in agent.stream(prompt, history=history):
            if isinstance(event, AssistantTurn):
                calls = []
                for c in event.message.tool_calls:
                    call = {"name": c.name, "arguments": c.arguments, "arguments_error": c.arguments_error,
                            "result": None}
                    by_id[c.id] = call
                    calls.append(call)
                # ``text``: the reply as the format read it, calls taken out (what the agentic checker reads).
                steps.append({"format": fmt.name, "raw_text": event.raw_text, "text": event.message.content,
                              "calls": calls,
                              "problems": list(event.problems)})
            elif isinstance(event, ToolResultEvent) and event.result.call_id in by_id:
                by_id[event.result.call_id]["result"] = event.result.content
            elif isinstance(event, RunFinished):
                history = list(event.result.messages)
                if event.result.status == "max_steps":
                    ended = "step_cap"
                elif event.result.status not in ("completed", "empty_answer"):
                    # The server failed (timeout, HTTP error): the record is an error, to be retried with
                    # --retry-errors, not a wrong answer of the model.
                    raise ModelError(f"turn {index}: {event.result.status}: {event.result.error or ''}".strip())
        turns.append({"user": prompt, "added_functions": [f["name"] for f in entry.added.get(index, [])],
                      "steps": steps, "ended": ended})
        if ended == "step_cap":
            break  # BFCL force-terminates the entry
    return {"turns": turns}


# ------------------------------------------------------------------------------------------- scoring

def trajectory_calls(trajectory: Mapping[str, Any]) -> list[list[list[tuple[str, dict[str, Any]]]]]:
    """Per turn, per step, the decodable calls of a stored trajectory (steps without any are left out)."""
    out = []
    for turn in trajectory.get("turns", []):
        steps = []
        for step in turn.get("steps", []):
            calls = [(c["name"], dict(c.get("arguments") or {})) for c in step.get("calls", [])
                     if c.get("arguments_error") is None]
            if calls:
                steps.append(calls)
        out.append(steps)
    return out


def _clip(obj: Any) -> Any:
    text = json.dumps(obj, default=str, ensure_ascii=False)
    return obj if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + " ..."


def _verdict(result: Mapping[str, Any], turn: int | None) -> dict[str, Any]:
    details = result.get("details") or {}
    detail = {k: _clip(details[k]) for k in ("differences", "missing_items", "model response decoded")
              if k in details}
    return {"value": 0.0, "valid": False, "reason": result.get("error_type", "multi_turn:unknown"), "turn": turn,
            "detail": str(result.get("error_message", "")), "diff": detail}


def score_entry(
    data_dir: Path, entry: MultiTurnEntry, calls: Sequence[Sequence[Sequence[tuple[str, dict[str, Any]]]]],
    *, forced: bool = False,
) -> dict[str, Any]:
    """The official multi-turn verdict on the model's calls (per turn, per step), executed by name.

    Args:
        data_dir: The fetched BFCL folder.
        entry: The entry.
        calls: Per turn, per step, ``(name, arguments)`` (as `trajectory_calls` gives).
        forced: The run was force-terminated (step cap).
    """
    checker = load(data_dir, "eval_checker.multi_turn_eval.multi_turn_checker")
    if forced or len(calls) != len(entry.ground_truth):
        return _verdict({"error_type": "multi_turn:force_terminated",
                         "error_message": f"the model was force-terminated after {STEP_LIMIT} steps in turn "
                                          f"{len(calls) - 1} ({len(calls)} of {len(entry.ground_truth)} turns "
                                          f"run)"}, len(calls) - 1)
    model = ApiSession(data_dir, entry.involved_classes, entry.initial_config, long_context=entry.long_context)
    truth = ApiSession(data_dir, entry.involved_classes, entry.initial_config, long_context=entry.long_context)
    all_model_results: list[str] = []
    for turn, gt_turn in enumerate(entry.ground_truth):
        steps = calls[turn]
        for step in steps:
            all_model_results += [model.execute(name, args) for name, args in step]
        gt_results = [truth.execute_parsed(_parse_gt(c)) for c in gt_turn]
        if gt_turn and not steps:
            return _verdict({"error_type": "multi_turn:empty_turn_model_response",
                             "error_message": f"Model response list is empty for turn {turn}"}, turn)
        if not gt_turn:
            continue
        state = checker.state_checker(model.instances, truth.instances)
        if not state["valid"]:
            return _verdict(state, turn)
        response = checker.response_checker(all_model_results, gt_results, turn)
        if not response["valid"]:
            return _verdict(response, turn)
    decoded = [[[f"{n}(...)" for n, _ in step] for step in turn] for turn in calls]
    irrelevance = checker.multi_turn_irrelevance_checker(decoded, entry.ground_truth)
    if not irrelevance["valid"]:
        turn = next(i for i, gt in enumerate(entry.ground_truth) if not gt and calls[i])
        return _verdict(irrelevance, turn)
    return {"value": 1.0, "valid": True, "reason": "ok", "turn": None, "detail": "", "diff": {}}


def gold_calls(data_dir: Path, entry: MultiTurnEntry) -> list[list[list[tuple[str, dict[str, Any]]]]]:
    """The ground truth as model calls: per turn one step with all of its calls, positional arguments named."""
    session = ApiSession(data_dir, entry.involved_classes, entry.initial_config, long_context=entry.long_context)
    return [[[(c.name, session.named_arguments(c)) for c in map(_parse_gt, turn)]] if turn else []
            for turn in entry.ground_truth]


def _parse_gt(text: str) -> ParsedCall:
    try:
        return parse_call(text)
    except (ValueError, SyntaxError) as exc:
        raise BadData(f"a ground-truth call cannot be read: {text[:120]!r}") from exc


def official_eval_calls(calls: Sequence[Sequence[Sequence[tuple[str, dict[str, Any]]]]]) -> list[list[list[str]]]:
    """The calls as the strings BFCL's decoder would produce (``name(k=repr(v))``), for the official checker."""
    return [[[f"{name}({','.join(f'{k}={v!r}' for k, v in args.items())})" for name, args in step]
             for step in turn] for turn in calls]


def official_verdict(
    data_dir: Path, entry: MultiTurnEntry, calls: Sequence[Sequence[Sequence[tuple[str, dict[str, Any]]]]],
) -> dict[str, Any]:
    """The official ``multi_turn_checker`` (then ``multi_turn_irrelevance_checker``) verdict, via ``eval``.

    For tests and cross-checks only: the official path evaluates call strings. A fresh model name per
    call keeps its global instances apart.
    """
    checker = load(data_dir, "eval_checker.multi_turn_eval.multi_turn_checker")
    decoded = official_eval_calls(calls)
    result: dict[str, Any] = checker.multi_turn_checker(
        decoded, entry.ground_truth, dict(entry.raw), entry.category, f"qwenkit_{uuid.uuid4().hex}")
    if result["valid"]:
        result = checker.multi_turn_irrelevance_checker(decoded, entry.ground_truth)
    return result


__all__ = [
    "ADDED_FUNCTIONS_PROMPT",
    "PACKAGE_DIR",
    "STEP_LIMIT",
    "ApiTool",
    "MultiTurnEntry",
    "gold_calls",
    "load_multi_turn",
    "official_verdict",
    "run_entry",
    "score_entry",
    "trajectory_calls",
]
