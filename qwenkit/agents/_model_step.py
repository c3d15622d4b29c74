"""One step of the loop: the prompt (cut to the context window), the model call (streamed as text and
reasoning deltas), and the reply parsed, made safe and recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

from qwenkit import tracing
from qwenkit.agents._context import estimate_tokens, fit
from qwenkit.agents._sanitize import sanitize_reply
from qwenkit.agents._steps import ErrorStep, FinalStep, StepOutcome, ToolStep
from qwenkit.agents._think_stream import ThinkSplitter
from qwenkit.agents.config import PARSE_OFF_LOOP_CHARS, LoopConfig
from qwenkit.agents.events import AssistantTurn, ContextTrimmed, Event, ReasoningDelta, StepError, TextDelta
from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest
from qwenkit.llm.formats.base import with_prefill
from qwenkit.llm.template_info import CountsTokens
from qwenkit.types import AssistantMessage, Completion, Message, ToolSpec, UserMessage

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


async def model_step(cfg: LoopConfig, msgs: list[Message], step: int, emit: Emit, *, after_max_steps: bool,
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


