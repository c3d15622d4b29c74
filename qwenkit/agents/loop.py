"""The agent loop: prompt the model, parse its reply, run the tools it asked for, repeat until it answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence

from qwenkit.agents.config import LoopConfig
from qwenkit.agents.conversation import tool_message, unanswered_calls
from qwenkit.agents.events import (
    AssistantTurn,
    ErrorStep,
    Event,
    FinalAnswer,
    FinalStep,
    RunFinished,
    RunResult,
    RunStarted,
    RunStatus,
    StepError,
    StepOutcome,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
    ToolStep,
)
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest
from qwenkit.tools.base import ToolContext, ToolResult
from qwenkit.types import AssistantMessage, Completion, Message, ToolCall, Usage, UserMessage

Emit = Callable[[Event], None]


async def _run_tools(cfg: LoopConfig, cid: str, calls: list[ToolCall], step: int, emit: Emit) -> list[ToolResult]:
    """Run every call of one turn concurrently; results come back in call order."""

    async def one(call: ToolCall) -> ToolResult:
        emit(ToolCallEvent(step=step, call=call))
        ctx = ToolContext(conversation_id=cid, call_id=call.id)
        result = await cfg.tools.call(call, ctx, timeout=cfg.tool_timeout)
        emit(ToolResultEvent(step=step, result=result))
        return result

    return list(await asyncio.gather(*(one(c) for c in calls)))


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
    cfg: LoopConfig, cid: str, msgs: list[Message], step: int, emit: Emit, *, last_word: bool = False
) -> StepOutcome:
    """One model call, and the tools it asked for. ``last_word``: tools withheld, any call dropped."""
    if last_word:
        prompt = cfg.fmt.render([*msgs, UserMessage(content=cfg.last_word_prompt)], [])
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
    parsed = cfg.fmt.parse_completion(completion)
    calls = () if last_word else tuple(parsed.tool_calls)
    message = AssistantMessage(content=parsed.content, reasoning=parsed.reasoning, tool_calls=calls)
    emit(AssistantTurn(step=step, message=message, raw_text=completion.text, problems=parsed.problems,
                       usage=completion.usage, last_word=last_word))
    if not calls:
        return FinalStep(message=message, usage=completion.usage)
    results = await _run_tools(cfg, cid, list(calls), step, emit)
    return ToolStep(message=message, results=results, usage=completion.usage)


async def _drive(cfg: LoopConfig, cid: str, msgs: list[Message], step: int, usage: Usage, emit: Emit) -> None:
    emit(RunStarted(conversation_id=cid, messages=list(msgs), steps_done=step, usage=usage))

    def finish(status: RunStatus, answer: str = "", error: str | None = None) -> None:
        emit(RunFinished(result=RunResult(
            answer=answer, status=status, error=error, conversation_id=cid, messages=msgs, steps=step,
            usage=usage,
        )))

    if pending := unanswered_calls(msgs):  # resumed after a crash between a turn and its results
        msgs.extend(tool_message(r) for r in await _run_tools(cfg, cid, pending, step, emit))
    while True:
        last_word = step >= cfg.max_steps  # out of steps: one call without tools, for an answer anyway
        if last_word and not cfg.last_word_prompt:
            return finish("max_steps")
        step += 1
        outcome = await _step(cfg, cid, msgs, step, emit, last_word=last_word)
        match outcome:
            case ErrorStep():
                return finish("max_steps" if last_word else "error", error=f"{outcome.error_type}: {outcome.message}")
            case FinalStep():
                usage += outcome.usage
                msgs.append(outcome.message)
                emit(FinalAnswer(step=step, text=outcome.message.content))
                return finish("max_steps" if last_word else "completed", answer=outcome.message.content)
            case ToolStep():
                usage += outcome.usage
                msgs.append(outcome.message)
                msgs.extend(tool_message(r) for r in outcome.results)


async def run_loop(
    cfg: LoopConfig, conversation_id: str, messages: Sequence[Message], *, steps_done: int = 0,
    usage: Usage | None = None, sink: Emit | None = None,
) -> AsyncGenerator[Event, None]:
    """Run the loop, yielding its events as they happen; the last one is `RunFinished`.

    Args:
        cfg: The loop's configuration.
        conversation_id: Id passed to stateful tools.
        messages: The conversation so far, ending with the user's turn (or a resumed partial turn).
        steps_done: Model calls already made (when resuming), counted against ``max_steps``.
        usage: Tokens already used (when resuming).
        sink: Called with each event as it happens, before a slow consumer gets it (transcripts).
    """
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def emit(event: Event) -> None:
        if sink is not None:
            sink(event)
        queue.put_nowait(event)

    task = asyncio.create_task(_drive(cfg, conversation_id, list(messages), steps_done, usage or Usage(), emit))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
        await task  # re-raise a bug in a tool registry or format; model errors were already events
    finally:
        if not task.done():  # the consumer stopped early: stop the run with it
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
