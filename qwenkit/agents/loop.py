"""The agent loop: prompt the model, parse its reply, run the tools it asked for, repeat until it answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from qwenkit import tracing
from qwenkit.agents._context import estimate_tokens, fit
from qwenkit.agents._sanitize import sanitize_reply
from qwenkit.agents._steps import ErrorStep, FinalStep, StepOutcome, ToolStep
from qwenkit.agents._think_stream import ThinkSplitter
from qwenkit.agents._tool_calls import needing_approval, repeated_calls, run_tool_calls
from qwenkit.agents.config import EMPTY_ANSWER_PROMPT, PARSE_OFF_LOOP_CHARS, REPEATED_ANSWER_PROMPT, LoopConfig
from qwenkit.agents.conversation import tool_message, unanswered_calls
from qwenkit.agents.events import (
    ApprovalRequested,
    AssistantTurn,
    ContextTrimmed,
    Event,
    FinalAnswer,
    OutputRetry,
    ReasoningDelta,
    RunFinished,
    RunResult,
    RunResumed,
    RunStarted,
    RunStatus,
    StepError,
    TextDelta,
)
from qwenkit.agents.limits import Spent, before_model_call, before_tool_calls
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest
from qwenkit.llm.formats.base import with_prefill
from qwenkit.llm.template_info import CountsTokens
from qwenkit.tools.registry import OPERATOR_ERRORS
from qwenkit.types import AssistantMessage, Completion, Message, ToolCall, ToolSpec, Usage, UserMessage

Emit = Callable[[Event], None]


async def _complete(cfg: LoopConfig, request: ChatRequest, step: int, emit: Emit) -> Completion:
    if not cfg.stream_tokens:
        return await cfg.model.complete(request)
    splitter = ThinkSplitter(thinking_open=request.thinking is True)

    def send(pieces: list[tuple[str, str]]) -> None:
        for kind, text in pieces:
            emit(ReasoningDelta(step=step, text=text) if kind == "reasoning" else TextDelta(step=step, text=text))

    async for chunk in cfg.model.stream(request):
        if chunk.reasoning:  # the server split the thinking off itself (reasoning_content)
            emit(ReasoningDelta(step=step, text=chunk.reasoning))
        if chunk.delta:
            send(splitter.push(chunk.delta))
        if chunk.completion is not None:
            send(splitter.flush())
            return chunk.completion
    raise ModelError(f"{cfg.model.name}: the stream ended without a final reply")


async def _fitted(cfg: LoopConfig, msgs: list[Message], specs: list[ToolSpec], step: int, emit: Emit) -> list[Message]:
    """``msgs`` cut to the context window when it is known and they would not fit; the event says what was cut."""
    if cfg.max_input_tokens is None:
        return msgs
    budget = max(1, cfg.max_input_tokens - (cfg.sampling.max_tokens or 0))
    counts = isinstance(cfg.model, CountsTokens)
    estimated = not counts

    async def count(candidate: Sequence[Message]) -> int:
        nonlocal estimated
        prompt = cfg.fmt.render(candidate, specs)
        if counts:
            wire = [{"role": m.role, "content": m.content} for m in prompt.messages]
            n = await cfg.model.count_tokens(wire, prompt.tools)  # type: ignore[attr-defined]
            if n is not None:
                return n
            estimated = True
        return estimate_tokens(prompt.messages, extra_chars=len(json.dumps(prompt.tools)) if prompt.tools else 0)

    fitted = await fit(msgs, budget, count)
    if fitted is None:
        return msgs
    emit(ContextTrimmed(step=step, tokens_before=fitted.tokens_before, tokens_after=fitted.tokens_after,
                        budget=budget, shortened=fitted.shortened, dropped=fitted.dropped, estimated=estimated))
    return fitted.messages


async def _step(cfg: LoopConfig, msgs: list[Message], step: int, emit: Emit, *, after_max_steps: bool,
                answer_prompt: str | None = None) -> StepOutcome:
    """One model call, parsed. With ``answer_prompt`` (the steps ran out, or the model only repeated calls it
    has the results of) that user turn is added, tools are withheld and any call is dropped."""
    if answer_prompt is not None:
        prompt_msgs = await _fitted(cfg, [*msgs, UserMessage(content=answer_prompt)], [], step, emit)
        prompt = cfg.fmt.render(prompt_msgs, [])
    else:
        specs = cfg.tools.specs()
        fitted = await _fitted(cfg, msgs, specs, step, emit)
        if cfg.tool_choice is None:
            prompt = cfg.fmt.render(fitted, specs)
        else:  # the format honours it (a forced call is prefilled) or raises ConfigError: never ignored
            prompt = cfg.fmt.render(fitted, specs, tool_choice=cfg.tool_choice)  # type: ignore[call-arg]
    response_format = None
    if cfg.output is not None and not prompt.tools and cfg.fmt.name == "native":
        # Structured output constrains every token, so it is asked for only when no tool may be called.
        response_format = cfg.output.response_format()
    request = ChatRequest(
        messages=prompt.messages, stop=prompt.stop, tools=prompt.tools,
        tool_choice=prompt.tool_choice if prompt.tools else None,
        continue_final=prompt.continue_final or bool(prompt.prefill), sampling=cfg.sampling,
        thinking=cfg.thinking, response_format=response_format,
    )
    with tracing.chat_span(cfg.model.name, step, cfg.sampling.temperature, cfg.sampling.max_tokens,
                           list(prompt.messages)) as span:
        try:
            completion = await _complete(cfg, request, step, emit)
        except ModelError as err:  # the backend already retried; the run ends with a clear error
            tracing.record_error(span, type(err).__name__, str(err))
            emit(StepError(step=step, error_type=type(err).__name__, message=str(err)))
            return ErrorStep(error_type=type(err).__name__, message=str(err))
        tracing.record_completion(span, completion)
    read = with_prefill(completion, prompt.prefill)  # a forced call's opening was written by the format
    if len(read.text) > PARSE_OFF_LOOP_CHARS:  # a huge reply must not stall other conversations
        parsed = await asyncio.to_thread(cfg.fmt.parse_completion, read)
    else:
        parsed = cfg.fmt.parse_completion(read)
    parsed, raw_text = sanitize_reply(parsed, completion.text)
    calls = () if answer_prompt is not None else tuple(parsed.tool_calls)
    message = AssistantMessage(content=parsed.content, reasoning=parsed.reasoning, tool_calls=calls)
    emit(AssistantTurn(step=step, message=message, raw_text=raw_text, problems=parsed.problems,
                       usage=completion.usage, after_max_steps=after_max_steps))
    if not calls:
        return FinalStep(message=message, usage=completion.usage)
    return ToolStep(message=message, usage=completion.usage)


class _Run:
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

    async def drive(self) -> None:
        cfg, step = self.cfg, self.spent.model_calls
        try:
            pending = unanswered_calls(self.msgs)  # resumed between a turn and its results
            if pending and not await self.tools(pending, step):
                return
            retries_left = cfg.output_retries
            while True:
                after_max_steps = step >= cfg.max_steps  # out of steps: one call without tools, for an answer
                if after_max_steps and not cfg.final_answer_prompt:
                    return self.finish("max_steps")
                if why := before_model_call(cfg.limits, self.spent):
                    return self.finish("limit", error=why)
                step = self.spent.model_calls = step + 1
                answer_prompt = cfg.final_answer_prompt if after_max_steps else (
                    REPEATED_ANSWER_PROMPT if self.answer_now else None)
                self.answer_now = False
                outcome = await _step(cfg, self.msgs, step, self.emit, after_max_steps=after_max_steps,
                                      answer_prompt=answer_prompt)
                if not isinstance(outcome, ErrorStep):
                    self.spent.usage += outcome.usage
                match outcome:
                    case ErrorStep():
                        status: RunStatus = "max_steps" if after_max_steps else "error"
                        return self.finish(status, error=f"{outcome.error_type}: {outcome.message}")
                    case FinalStep():
                        self.msgs.append(outcome.message)
                        left = await self.answer(outcome.message, step, after_max_steps, retries_left)
                        if left is None:
                            return
                        retries_left = left
                    case ToolStep():
                        self.msgs.append(outcome.message)
                        if not await self.tools(list(outcome.message.tool_calls), step):
                            return
        except OPERATOR_ERRORS as err:  # recorded, then raised: the operator must fix the machine or the setup
            self.emit(StepError(step=step, error_type=type(err).__name__, message=str(err)))
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
            await _Run(cfg, cid, msgs, spent, emit).drive()
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
