"""The code-interpreter benchmark task: an agent with the ``code_interpreter`` tool solves each task.

Per record: the input files and the figure hooks are staged in the conversation's kernel, the agent loop
runs (at most 3 code executions for visualization, 1 otherwise, as Qwen-Agent's benchmark allows; a
vis-easy task starts with its first step already executed), the figures drawn are described, then:

- math: the last number of the final answer must equal the gold;
- visualization: some execution produced an image without an error, some figure passes the task's checks
  (kind, axes, title), and, with a judge, the vision model says the plot matches the request;
- general executable rate: the first code block the model wrote runs without error in a fresh sandbox
  (after the vis-easy prelude, as Qwen-Agent prepends it); the data answer is also compared with the gold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwenkit.agents.events import AssistantTurn, RunFinished, ToolCallEvent, ToolResultEvent
from qwenkit.agents.loop import LoopConfig, run_loop
from qwenkit.bench.codeinterp.sandbox import (
    FIGURE_HOOKS,
    REPORT_CODE,
    CodeRunner,
    SandboxRunner,
    parse_figures,
    staging_code,
)
from qwenkit.bench.codeinterp.scoring import VisionJudge, figures_pass, number_matches
from qwenkit.bench.codeinterp.tasks import CATEGORIES, CodeTask, builtin_tasks, load_qwen_agent_tasks
from qwenkit.bench.results import BenchRecord, GroupCount, ResultRow, Summary
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats import get_format
from qwenkit.tools.base import Tool, ToolContext
from qwenkit.tools.registry import ToolRegistry
from qwenkit.types import AssistantMessage, Message, ToolCall, UserMessage

SCORER_VERSION = 1
PRELUDE_ID = "call_prelude"
FILE_NOTE = {"en": "\n\n(Input file in the current working directory: {names})",
             "zh": "\n\n（输入文件位于当前工作目录：{names}）"}


def _exec_limit(task: CodeTask) -> int:
    return 3 if task.category.startswith("vis") else 1


def _code_of(call: dict[str, Any]) -> str:
    from qwenkit.tools.builtin.code_interpreter import extract_code

    return extract_code(str(call.get("arguments", {}).get("code", "")))


def tasks_fingerprint(tasks: Sequence[CodeTask]) -> str:
    """Short hash of the task set (queries, gold, checks, preludes and input file contents)."""
    h = hashlib.sha256()
    for t in tasks:
        h.update(json.dumps([t.id, t.category, t.lang, t.query, t.answer, repr(t.check), t.prelude, list(t.files)],
                            ensure_ascii=False).encode())
        if t.file_bytes:
            for name, data in sorted(t.file_bytes.items()):
                h.update(name.encode() + hashlib.sha256(data).digest())
    if any(not t.file_bytes and t.files for t in tasks):
        from qwenkit.bench.codeinterp.data import tables

        h.update(json.dumps(tables().__dict__, sort_keys=True).encode())
    return h.hexdigest()[:16]


class CodeInterpTask:
    """Code-interpreter benchmark over a task set.

    Args:
        model: The model under test.
        tasks: The tasks.
        tool: The code-interpreter tool the agent calls (its ``session(conversation_id)`` is used to stage
            files and read figures when it has one, else its ``run`` with a ``code`` argument).
        runner: Fresh-sandbox runner for the executable rate.
        format: Prompt format (Qwen-Agent's benchmark uses ReAct).
        sampling: Sampling settings.
        exec_timeout: Seconds per code cell in the executable-rate check.
        judge: Optional vision judge for the plots.
        source: ``builtin`` or the task file, for the report.
    """

    name = "codeinterp"

    def __init__(
        self,
        model: ChatModel,
        tasks: Sequence[CodeTask],
        tool: Tool,
        runner: CodeRunner,
        *,
        format: str = "react",
        sampling: Sampling | None = None,
        exec_timeout: float = 60.0,
        judge: VisionJudge | None = None,
        source: str = "builtin",
    ) -> None:
        self.model = model
        self.tasks = list(tasks)
        self.tool = tool
        self.registry = ToolRegistry([tool])
        self.runner = runner
        self.fmt = get_format(format)
        self.sampling = sampling or Sampling()
        self.exec_timeout = exec_timeout
        self.judge = judge
        self.source = source

    def config(self) -> dict[str, Any]:
        """Model, format, task set fingerprint, sampling, limits, judge and scorer version."""
        return {
            "bench": self.name, "model": self.model.name, "format": self.fmt.name, "source": self.source,
            "tasks": tasks_fingerprint(self.tasks), "n_tasks": len(self.tasks), "sampling": self.sampling.model_dump(),
            "exec_timeout": self.exec_timeout, "judge": self.judge.model if self.judge else None,
            "scorer_version": SCORER_VERSION,
        }

    def records(self) -> list[BenchRecord]:
        """One record per task."""
        return [BenchRecord(t.id, t.category, t) for t in self.tasks]

    async def _in_kernel(self, cid: str, code: str) -> str:
        """Run setup or report code in the conversation's kernel (not shown to the model); return stdout."""
        session_of = getattr(self.tool, "session", None)
        if session_of is not None:
            result = await (await session_of(cid)).execute(code, timeout=60)
            if not result.ok:
                raise RuntimeError(f"setup code failed in the sandbox: {result.error}")
            return str(result.stdout)
        out = await self.tool.run({"code": code}, ToolContext(conversation_id=cid, call_id="setup"))
        return out if isinstance(out, str) else out.text

    def _messages(self, task: CodeTask) -> list[Message]:
        query = task.query
        if task.files:
            note = FILE_NOTE.get(task.lang, FILE_NOTE["en"])
            query += note.format(names=", ".join(task.files))
        messages: list[Message] = [UserMessage(content=query)]
        if task.prelude:
            call = ToolCall(id=PRELUDE_ID, name=self.tool.name, arguments={"code": task.prelude},
                            raw_arguments=json.dumps({"code": task.prelude}, ensure_ascii=False))
            messages.append(AssistantMessage(tool_calls=(call,)))
        return messages

    async def solve(self, record: BenchRecord) -> dict[str, Any]:
        """Run the agent on the task; record its code, tool results, answer and the figures drawn."""
        task: CodeTask = record.data
        cid = f"codeinterp-{task.id}-{uuid.uuid4().hex[:8]}"
        steps = _exec_limit(task) + 1
        cfg = LoopConfig(model=self.model, fmt=self.fmt, tools=self.registry, sampling=self.sampling, max_steps=steps)
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        texts: list[str] = []
        final: dict[str, Any] = {}
        try:
            await self._in_kernel(cid, staging_code(task.input_files()) + FIGURE_HOOKS)
            async for event in run_loop(cfg, cid, self._messages(task)):
                if isinstance(event, AssistantTurn):
                    texts.append(event.raw_text)
                elif isinstance(event, ToolCallEvent):
                    calls.append({"id": event.call.id, "name": event.call.name, "arguments": event.call.arguments})
                elif isinstance(event, ToolResultEvent):
                    r = event.result
                    results.append({"call_id": r.call_id, "ok": r.ok, "images": r.images, "error_type": r.error_type,
                                    "content": r.content[-2000:]})
                elif isinstance(event, RunFinished):
                    final = {"answer": event.result.answer, "status": event.result.status,
                             "error": event.result.error, "steps": event.result.steps}
            figures = parse_figures(await self._in_kernel(cid, REPORT_CODE))
        finally:
            await self.registry.close_conversation(cid)
        if final.get("status") == "error":
            raise RuntimeError(final.get("error") or "the agent run failed")
        return {**final, "calls": calls, "tool_results": results, "texts": texts, "figures": figures}

    async def score(self, record: BenchRecord, result: dict[str, Any]) -> dict[str, Any]:
        """Answer, figures and judge from the run; the executable check in a fresh sandbox."""
        task: CodeTask = record.data
        model_calls = [c for c in result["calls"] if c["id"] != PRELUDE_ID and c["name"] == self.tool.name]
        first = _code_of(model_calls[0]) if model_calls else ""
        out: dict[str, Any] = {"has_code": bool(first.strip())}
        if first.strip():
            code = (task.prelude + "\n" + first) if task.prelude else first
            run = await self.runner.run(code, task.input_files(), self.exec_timeout)
            out.update(executable=run.ok, exec_error=run.error)
        else:
            out.update(executable=False, exec_error="no code")
        if task.answer is not None:
            out["correct"] = number_matches(result.get("answer", ""), task.answer)
        if task.category.startswith("vis"):
            ok_images = [img for r in result["tool_results"] if r["call_id"] != PRELUDE_ID and r["ok"]
                         for img in r["images"]]
            checks_ok, why = figures_pass(result["figures"], task.check)
            out.update(image_ok=bool(ok_images), checks_ok=checks_ok, checks=why)
            passed = bool(ok_images) and checks_ok
            if self.judge is not None and passed:
                existing = [p for p in ok_images if Path(p).is_file()]
                verdict, reply = await self.judge.judge(existing, task.query, task.lang) if existing else (False, "")
                out.update(judge=verdict, judge_reply=reply[:200])
                passed = verdict
            out.update(value=1.0 if passed else 0.0,
                       reason="ok" if passed else ("no_image" if not ok_images else
                                                   "figure_checks" if not checks_ok else "judge"))
        elif task.category == "math":
            correct = bool(out.get("correct"))
            out.update(value=1.0 if correct else 0.0, reason="ok" if correct else "wrong_answer")
        else:
            out.update(value=1.0 if out["executable"] else 0.0, reason="ok" if out["executable"] else "not_executable")
        return out

    def summarize(self, rows: Sequence[ResultRow]) -> Summary:
        """Math accuracy, Visualization-Hard/Easy accuracy, General executable rate, plus detail metrics."""
        by: dict[str, list[ResultRow]] = {c: [r for r in rows if r.category == c] for c in CATEGORIES}
        scores: dict[str, float] = {}
        counts: dict[str, GroupCount] = {}

        def put(name: str, group: list[ResultRow], key: str) -> None:
            scored = [r for r in group if r.status != "ok" or key in r.score]
            if scored:
                scores[name] = sum(r.status == "ok" and bool(r.score.get(key)) for r in scored) / len(scored)
                counts[name] = GroupCount(len(scored), sum(r.status != "ok" for r in scored))

        put("math", by["math"], "correct")
        put("visualization-hard", by["vis-hard"], "value")
        put("visualization-easy", by["vis-easy"], "value")
        put("general_executable_rate", by["general"], "executable")
        put("executable_rate_math", by["math"], "executable")
        put("executable_rate_visualization", by["vis-hard"] + by["vis-easy"], "executable")
        put("general_answer_accuracy", by["general"], "correct")
        judge = f"vision judge {self.judge.model}" if self.judge else "no vision judge"
        notes = [
            f"Tasks: {self.source} ({len(rows)} records), format {self.fmt.name}; model {self.model.name}.",
            f"Visualization: an image produced without an error, figure checks passed, {judge}.",
            "Executable rate: the first code block (after a vis-easy prelude) in a fresh sandbox.",
            "Errored records count as failures.",
        ]
        reasons: dict[str, dict[str, int]] = {}
        for r in rows:
            reason = str(r.score.get("reason", "error")) if r.status == "ok" else "error"
            reasons.setdefault(r.category, {}).setdefault(reason, 0)
            reasons[r.category][reason] += 1
        return Summary(scores=scores, counts=counts, notes=notes, reasons=reasons)

    async def preflight(self) -> None:
        """Check the sandbox can run code at all (one trivial run).

        Raises:
            ConfigError: The sandbox is unavailable on this machine.
        """
        try:
            outcome = await self.runner.run("print(1)", {}, 60)
        except Exception as exc:
            raise ConfigError(f"the code sandbox does not work here: {exc} (see 'qwenkit sandbox doctor').") from exc
        if not outcome.ok:
            raise ConfigError(f"the code sandbox does not work here: {outcome.error}.")

    async def aclose(self) -> None:
        """Release kernels and clients."""
        await self.registry.aclose()
        await self.runner.aclose()
        if self.judge is not None:
            await self.judge.aclose()


def build_task(args: argparse.Namespace, model: ChatModel, sampling: Sampling, out_dir: Path) -> CodeInterpTask:
    """The task the ``qwenkit bench codeinterp`` options describe."""
    from qwenkit.tools.builtin.code_interpreter import CodeInterpreter

    if args.tasks:
        tasks, source = load_qwen_agent_tasks(args.tasks, args.files_dir), str(args.tasks)
    else:
        tasks, source = builtin_tasks(), "builtin"
    if args.limit is not None:
        seen: dict[str, int] = {}
        kept = []
        for t in tasks:
            seen[t.category] = seen.get(t.category, 0) + 1
            if seen[t.category] <= args.limit:
                kept.append(t)
        tasks = kept
    judge = None
    if args.vis_judge_model:
        judge = VisionJudge(args.vis_judge_model, args.vis_judge_base_url or args.base_url,
                            args.vis_judge_api_key or args.api_key)
    tool = CodeInterpreter(timeout=args.exec_timeout, workdir_root=out_dir / "images",
                           pool_size=max(1, min(args.concurrency, 4)))
    return CodeInterpTask(model, tasks, tool, SandboxRunner(pool_size=max(1, min(args.concurrency, 4))),
                          format=args.format, sampling=sampling, exec_timeout=args.exec_timeout, judge=judge,
                          source=source)
