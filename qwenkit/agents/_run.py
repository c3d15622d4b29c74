"""A run's state and how each kind of step ends: calls run (or wait for approval, or hit a limit), an answer
accepted (typed, or asked for again), the run finished with its result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qwenkit.agents._tool_calls import needing_approval, repeated_calls, run_tool_calls
from qwenkit.agents.config import EMPTY_ANSWER_PROMPT, LoopConfig
from qwenkit.agents.conversation import tool_message
from qwenkit.agents.events import (
    ApprovalRequested,
    Event,
    FinalAnswer,
    OutputRetry,
    RunFinished,
    RunResult,
    RunStatus,
)
from qwenkit.agents.limits import Spent, before_tool_calls
from qwenkit.types import AssistantMessage, Message, ToolCall, UserMessage

Emit = Callable[[Event], None]


class Run:
    """One run's mutable state and its way of ending; the loop itself is `drive`."""

    def __init__(self, cfg: LoopConfig, cid: str, msgs: list[Message], spent: Spent, emit: Emit) -> None:
        self.cfg, self.cid, self.msgs, self.spent, self.emit = cfg, cid, msgs, spent, emit
        self.asked_again_for_empty = False
        self.answer_now = False

    def finish(self, status: RunStatus, *, answer: str = "", error: str | None = None, output: Any = None,
               pending: Sequence[ToolCall] = ()) -> None:
        self.emit(RunFinished(result=RunResult(
            answer=answer, status=status, error=error, output=output, conversation_id=self.cid,
            messages=self.msgs, steps=self.spent.model_calls, tool_calls=self.spent.tool_calls,
            usage=self.spent.usage, pending_approvals=list(pending),
        )))

    async def tools(self, calls: list[ToolCall], step: int) -> bool:
        """Run a turn's calls unless they need approval or exceed a limit; whether the run goes on."""
        if waiting := needing_approval(self.cfg, self.cid, calls, step, self.cfg.decisions):
            self.emit(ApprovalRequested(step=step, calls=waiting))
            names = ", ".join(sorted({c.name for c in waiting}))
            self.finish("awaiting_approval", error=f"{len(waiting)} call(s) of {names} need approval", pending=waiting)
            return False
        if why := before_tool_calls(self.cfg.limits, self.spent, len(calls)):
            self.finish("limit", error=why)
            return False
        repeats = repeated_calls(self.msgs, calls) if self.cfg.repeated_call_guard else {}
        # Nothing new was asked for: the next call withholds the tools and asks for the answer.
        self.answer_now = bool(calls) and len(repeats) == len(calls)
        results = await run_tool_calls(self.cfg, self.cid, calls, step, self.emit, self.cfg.decisions, repeats)
        self.spent.tool_calls += len(results)
        for r in results:  # an agent used as a tool spent tokens too
            self.spent.usage += r.usage
        self.msgs.extend(tool_message(r) for r in results)
        return True

    async def answer(self, message: AssistantMessage, step: int, after_max_steps: bool,
                     retries_left: int) -> int | None:
        """Accept a final answer (typed when the agent has an output type); retries left, or None when done."""
        status: RunStatus = "max_steps" if after_max_steps else "completed"
        if not message.content.strip():  # never "completed" with nothing to show
            if self.cfg.retry_empty_answer and not self.asked_again_for_empty and not after_max_steps:
                self.asked_again_for_empty = True
                self.emit(OutputRetry(step=step, errors="the answer is empty", retries_left=0,
                                      message=EMPTY_ANSWER_PROMPT))
                self.msgs.append(UserMessage(content=EMPTY_ANSWER_PROMPT))
                return retries_left
            self.emit(FinalAnswer(step=step, text=""))
            self.finish("empty_answer", error="the model's final reply was empty")
            return None
        output: Any = message.content
        if self.cfg.output is not None:
            output, errors = await self.cfg.output.parse(message.content)
            if errors is not None:
                if retries_left > 0 and not after_max_steps:
                    retry = self.cfg.output.retry_prompt(errors)
                    self.emit(OutputRetry(step=step, errors=errors, retries_left=retries_left - 1, message=retry))
                    self.msgs.append(UserMessage(content=retry))
                    return retries_left - 1
                self.emit(FinalAnswer(step=step, text=message.content))
                self.finish("output_invalid", answer=message.content,
                            error=f"the answer is not a valid {self.cfg.output.name}: {errors}")
                return None
        self.emit(FinalAnswer(step=step, text=message.content))
        self.finish(status, answer=message.content, output=output)
        return None

