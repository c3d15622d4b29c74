"""The agent loop: prompt the model, parse its reply, run the tools it asked for, repeat until it answers.

One step is `_model_step.model_step`; what each outcome does to the run is `_run.Run`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence

from qwenkit import tracing
from qwenkit.agents._model_step import model_step
from qwenkit.agents._run import Run
from qwenkit.agents._steps import ErrorStep, FinalStep, ToolStep
from qwenkit.agents.config import REPEATED_ANSWER_PROMPT, LoopConfig
from qwenkit.agents.conversation import unanswered_calls
from qwenkit.agents.events import Event, RunResumed, RunStarted, RunStatus, StepError
from qwenkit.agents.limits import Spent, before_model_call
from qwenkit.tools.registry import OPERATOR_ERRORS
from qwenkit.types import Message, Usage

Emit = Callable[[Event], None]


async def _loop(run: Run) -> None:
    """Steps until the run finishes: model call, then tools or an answer; limits checked before each call."""
    cfg, step = run.cfg, run.spent.model_calls
    try:
        pending = unanswered_calls(run.msgs)  # resumed between a turn and its results
        if pending and not await run.tools(pending, step):
            return
        retries_left = cfg.output_retries
        while True:
            after_max_steps = step >= cfg.max_steps  # out of steps: one call without tools, for an answer
            if after_max_steps and not cfg.final_answer_prompt:
                return run.finish("max_steps")
            if why := before_model_call(cfg.limits, run.spent):
                return run.finish("limit", error=why)
            step = run.spent.model_calls = step + 1
            answer_prompt = cfg.final_answer_prompt if after_max_steps else (
                REPEATED_ANSWER_PROMPT if run.answer_now else None)
            run.answer_now = False
            outcome = await model_step(cfg, run.msgs, step, run.emit, after_max_steps=after_max_steps,
                                       answer_prompt=answer_prompt)
            if not isinstance(outcome, ErrorStep):
                run.spent.usage += outcome.usage
            match outcome:
                case ErrorStep():
                    status: RunStatus = "max_steps" if after_max_steps else "error"
                    return run.finish(status, error=f"{outcome.error_type}: {outcome.message}")
                case FinalStep():
                    run.msgs.append(outcome.message)
                    left = await run.answer(outcome.message, step, after_max_steps, retries_left)
                    if left is None:
                        return
                    retries_left = left
                case ToolStep():
                    run.msgs.append(outcome.message)
                    if not await run.tools(list(outcome.message.tool_calls), step):
                        return
    except OPERATOR_ERRORS as err:  # recorded, then raised: the operator must fix the machine or the setup
        run.emit(StepError(step=step, error_type=type(err).__name__, message=str(err)))
        raise


async def _drive(cfg: LoopConfig, cid: str, msgs: list[Message], spent: Spent, emit: Emit, resumed: bool) -> None:
    with tracing.agent_span(cfg.agent_name, cfg.model.name, cid) as span:
        if resumed:
            emit(RunResumed(conversation_id=cid, steps_done=spent.model_calls, tool_calls_done=spent.tool_calls,
                            usage=spent.usage))
        else:
            emit(RunStarted(conversation_id=cid, messages=list(msgs), steps_done=spent.model_calls,
                            usage=spent.usage))
        try:
            await _loop(Run(cfg, cid, msgs, spent, emit))
        except OPERATOR_ERRORS as err:
            tracing.record_error(span, type(err).__name__, str(err))
            raise


async def run_loop(
    cfg: LoopConfig, conversation_id: str, messages: Sequence[Message], *, steps_done: int = 0,
    tool_calls_done: int = 0, usage: Usage | None = None, sink: Emit | None = None, resumed: bool = False,
) -> AsyncGenerator[Event, None]:
    """Run the loop, yielding its events as they happen; the last one is `RunFinished`.

    Args:
        cfg: The loop's configuration.
        conversation_id: Id passed to stateful tools.
        messages: The conversation so far, ending with the user's turn (or a resumed partial turn).
        steps_done: Model calls already made (when resuming), counted against ``max_steps`` and the limits.
        tool_calls_done: Tool calls already run (when resuming), counted against the limits.
        usage: Tokens already used (when resuming).
        sink: Called with each event as it happens, before a slow consumer gets it (transcripts).
        resumed: The run continues one a transcript recorded: start with `RunResumed`, not `RunStarted`.

    Raises:
        SandboxUnavailable: A tool needs a sandbox this machine cannot give (after a `StepError` event).
        ConfigError: A tool is misconfigured (likewise).
    """
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def emit(event: Event) -> None:
        if sink is not None:
            sink(event)
        queue.put_nowait(event)

    spent = Spent(model_calls=steps_done, tool_calls=tool_calls_done, usage=usage or Usage())
    task = asyncio.create_task(_drive(cfg, conversation_id, list(messages), spent, emit, resumed))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
        await task  # re-raise an operator error or a bug; model errors were already events
    finally:
        if not task.done():  # the consumer stopped early: stop the run with it
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
