"""The agent loop: prompt the model, parse its reply, run the tools it asked for, repeat until it answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence

from qwenkit.agents._sanitize import sanitize_reply
from qwenkit.agents._steps import ErrorStep, FinalStep, StepOutcome, ToolStep
from qwenkit.agents.config import PARSE_OFF_LOOP_CHARS, LoopConfig
from qwenkit.agents.conversation import tool_message, unanswered_calls
from qwenkit.agents.events import (
    AssistantTurn,
    Event,
    FinalAnswer,
    RunFinished,
    RunResult,
    RunResumed,
    RunStarted,
    RunStatus,
    StepError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest
from qwenkit.tools.base import ToolContext, ToolResult
from qwenkit.tools.registry import OPERATOR_ERRORS
from qwenkit.types import AssistantMessage, Completion, Message, ToolCall, Usage, UserMessage

Emit = Callable[[Event], None]

STOP_GRACE_S = 5.0
"""When a run is stopped mid-step, how long calls already running get to finish and be recorded."""


async def _run_tools(cfg: LoopConfig, cid: str, calls: list[ToolCall], step: int, emit: Emit) -> list[ToolResult]:
    """Run one turn's calls and return their results in call order.

    Calls run concurrently, except calls of `Tool.sequential` tools, which run one after another in the
    order written (they share state: ``cd`` then ``mkdir``). If the run is stopped meanwhile, calls already
    running get `STOP_GRACE_S` to finish; each started call ends up with a recorded result (its own, or
    "interrupted"), so a resume never runs a started call a second time.
    """
    results: dict[str, ToolResult] = {}
    started: list[ToolCall] = []

    async def one(call: ToolCall) -> None:
        started.append(call)
        emit(ToolCallEvent(step=step, call=call))
        ctx = ToolContext(conversation_id=cid, call_id=call.id, deps=cfg.deps, step=step, agent_name=cfg.agent_name)
        result = await cfg.tools.call(call, ctx, timeout=cfg.tool_timeout)
        results[call.id] = result
        emit(ToolResultEvent(step=step, result=result))

    async def in_order(chain: list[ToolCall]) -> None:
        for call in chain:
            await one(call)

    chain = [c for c in calls if (t := cfg.tools.get(c.name)) is not None and t.sequential]
    work = [one(c) for c in calls if c not in chain]
    if chain:
        work.append(in_order(chain))
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.shield(asyncio.gather(*tasks))
    except asyncio.CancelledError:
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for call in started:
            if call.id not in results:
                emit(ToolResultEvent(step=step, result=ToolResult(
                    call_id=call.id, name=call.name, ok=False, error_type="Interrupted",
                    content=f"Error: the run was stopped while {call.name} was running; its result is unknown.",
                )))
        raise
    except BaseException:
        for task in tasks:  # an operator error in one call: don't leave the others running unowned
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [results[c.id] for c in calls]


async def _complete(cfg: LoopConfig, request: ChatRequest, step: int, emit: Emit) -> Completion:
    if not cfg.stream_tokens:
        return await cfg.model.complete(request)
    async for chunk in cfg.model.stream(request):
        if chunk.delta:
            emit(TextDelta(step=step, text=chunk.delta))
        if chunk.completion is not None:
            return chunk.completion
    raise ModelError(f"{cfg.model.name}: the stream ended without a final reply")


async def _step(
    cfg: LoopConfig, cid: str, msgs: list[Message], step: int, emit: Emit, *, after_max_steps: bool = False
) -> StepOutcome:
    """One model call, and the tools it asked for. ``after_max_steps``: tools withheld, any call dropped."""
    if after_max_steps:
        prompt = cfg.fmt.render([*msgs, UserMessage(content=cfg.final_answer_prompt)], [])
    else:
        prompt = cfg.fmt.render(msgs, cfg.tools.specs())
    request = ChatRequest(
        messages=prompt.messages, stop=prompt.stop, tools=prompt.tools,
        tool_choice=(cfg.tool_choice or prompt.tool_choice) if prompt.tools else None,
        continue_final=prompt.continue_final, sampling=cfg.sampling,
    )
    try:
        completion = await _complete(cfg, request, step, emit)
    except ModelError as err:  # the backend already retried; the run ends with a clear error
        emit(StepError(step=step, error_type=type(err).__name__, message=str(err)))
        return ErrorStep(error_type=type(err).__name__, message=str(err))
    if len(completion.text) > PARSE_OFF_LOOP_CHARS:  # a huge reply must not stall other conversations
        parsed = await asyncio.to_thread(cfg.fmt.parse_completion, completion)
    else:
        parsed = cfg.fmt.parse_completion(completion)
    parsed, raw_text = sanitize_reply(parsed, completion.text)
    calls = () if after_max_steps else tuple(parsed.tool_calls)
    message = AssistantMessage(content=parsed.content, reasoning=parsed.reasoning, tool_calls=calls)
    emit(AssistantTurn(step=step, message=message, raw_text=raw_text, problems=parsed.problems,
                       usage=completion.usage, after_max_steps=after_max_steps))
    if not calls:
        return FinalStep(message=message, usage=completion.usage)
    results = await _run_tools(cfg, cid, list(calls), step, emit)
    return ToolStep(message=message, results=results, usage=completion.usage)


async def _drive(
    cfg: LoopConfig, cid: str, msgs: list[Message], step: int, usage: Usage, emit: Emit, resumed: bool
) -> None:
    if resumed:
        emit(RunResumed(conversation_id=cid, steps_done=step, usage=usage))
    else:
        emit(RunStarted(conversation_id=cid, messages=list(msgs), steps_done=step, usage=usage))

    def finish(status: RunStatus, answer: str = "", error: str | None = None) -> None:
        emit(RunFinished(result=RunResult(
            answer=answer, status=status, error=error, conversation_id=cid, messages=msgs, steps=step,
            usage=usage,
        )))

    try:
        if pending := unanswered_calls(msgs):  # resumed after a crash between a turn and its results
            msgs.extend(tool_message(r) for r in await _run_tools(cfg, cid, pending, step, emit))
        while True:
            after_max_steps = step >= cfg.max_steps  # out of steps: one call without tools, for an answer
            if after_max_steps and not cfg.final_answer_prompt:
                return finish("max_steps")
            step += 1
            outcome = await _step(cfg, cid, msgs, step, emit, after_max_steps=after_max_steps)
            match outcome:
                case ErrorStep():
                    status: RunStatus = "max_steps" if after_max_steps else "error"
                    return finish(status, error=f"{outcome.error_type}: {outcome.message}")
                case FinalStep():
                    usage += outcome.usage
                    msgs.append(outcome.message)
                    emit(FinalAnswer(step=step, text=outcome.message.content))
                    return finish("max_steps" if after_max_steps else "completed", answer=outcome.message.content)
                case ToolStep():
                    usage += outcome.usage
                    msgs.append(outcome.message)
                    msgs.extend(tool_message(r) for r in outcome.results)
    except OPERATOR_ERRORS as err:  # recorded, then raised: the operator must fix the machine or the setup
        emit(StepError(step=step, error_type=type(err).__name__, message=str(err)))
        raise


async def run_loop(
    cfg: LoopConfig, conversation_id: str, messages: Sequence[Message], *, steps_done: int = 0,
    usage: Usage | None = None, sink: Emit | None = None, resumed: bool = False,
) -> AsyncGenerator[Event, None]:
    """Run the loop, yielding its events as they happen; the last one is `RunFinished`.

    Args:
        cfg: The loop's configuration.
        conversation_id: Id passed to stateful tools.
        messages: The conversation so far, ending with the user's turn (or a resumed partial turn).
        steps_done: Model calls already made (when resuming), counted against ``max_steps``.
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

    task = asyncio.create_task(
        _drive(cfg, conversation_id, list(messages), steps_done, usage or Usage(), emit, resumed)
    )
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
