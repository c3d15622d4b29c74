"""Running one turn's tool calls: order, concurrency, approval decisions, tracing, and stopping cleanly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence

from qwenkit import tracing
from qwenkit.agents.config import LoopConfig
from qwenkit.agents.events import Event, NestedEvent, ToolCallEvent, ToolResultEvent
from qwenkit.tools.base import ToolContext, ToolResult
from qwenkit.types import AssistantMessage, Message, ToolCall, ToolMessage

Emit = Callable[[Event], None]
Decision = bool | str
"""A person's decision on a call: ``True`` (run it), ``False`` or a reason (don't; the model is told)."""

STOP_GRACE_S = 5.0
"""When a run is stopped mid-step, how long calls already running get to finish and be recorded."""


def context_for(cfg: LoopConfig, cid: str, call: ToolCall, step: int, emit: Emit | None = None) -> ToolContext:
    """The context a tool gets for ``call``; with ``emit``, events the tool passes on are nested under the call."""
    def nest(event: Event) -> None:
        if emit is not None:
            emit(NestedEvent(step=step, call_id=call.id, tool_name=call.name, event=event))

    return ToolContext(conversation_id=cid, call_id=call.id, deps=cfg.deps, step=step, agent_name=cfg.agent_name,
                       emit=nest if emit is not None else None)


def needing_approval(cfg: LoopConfig, cid: str, calls: list[ToolCall], step: int,
                     decisions: Mapping[str, Decision]) -> list[ToolCall]:
    """The calls that must wait for a person: their tool requires approval and no decision was given."""
    pending = []
    for call in calls:
        tool = cfg.tools.get(call.name)
        if tool is None or call.id in decisions:
            continue
        try:
            needs = tool.needs_approval(dict(call.arguments), context_for(cfg, cid, call, step))
        except Exception:  # a rule that fails on odd arguments errs on the safe side
            needs = True
        if needs:
            pending.append(call)
    return pending


def _key(call: ToolCall) -> tuple[str, str]:
    return call.name, json.dumps(call.arguments, sort_keys=True, ensure_ascii=False, default=str)


REPEAT_NOTICE = "You already called"
"""How a repeated-call observation starts; an earlier notice is looked through for the real result."""


def repeated_calls(messages: Sequence[Message], calls: Sequence[ToolCall]) -> dict[str, str]:
    """Calls identical to one of the previous assistant turn, by id, with the real result of that call.

    ``messages`` ends with the turn that made ``calls``. When the model has repeated the call several turns
    in a row, the result quoted is the one the call first returned, not an earlier notice.
    """
    turns: list[tuple[AssistantMessage, dict[str, str]]] = []  # newest first, back to the last user turn
    results: dict[str, str] = {}
    for msg in reversed(messages):
        if isinstance(msg, ToolMessage):
            results[msg.tool_call_id] = msg.content
        elif isinstance(msg, AssistantMessage):
            turns.append((msg, results))
            results = {}
        else:
            break  # a user turn: a new question, the same call may be meant again
    if len(turns) < 2:
        return {}
    out: dict[str, str] = {}
    wanted = {_key(c): c.id for c in calls if c.arguments_error is None}
    for key, call_id in wanted.items():
        for turn, turn_results in turns[1:]:
            match = next((c for c in turn.tool_calls if c.arguments_error is None and _key(c) == key), None)
            if match is None or match.id not in turn_results:
                break  # the chain of identical calls ends here
            result = turn_results[match.id]
            if not result.startswith(REPEAT_NOTICE):
                out[call_id] = result
                break
    return out


def _repeat(call: ToolCall, earlier: str) -> ToolResult:
    return ToolResult(call_id=call.id, name=call.name, ok=False, error_type="RepeatedCall", content=(
        f"{REPEAT_NOTICE} {call.name} with exactly these arguments, and its result is above:\n{earlier}\n"
        "It was not run again. Do not repeat the call: use this result to answer the question now."))


def _denied(call: ToolCall, decision: Decision) -> ToolResult:
    reason = f" Reason: {decision}" if isinstance(decision, str) and decision else ""
    return ToolResult(call_id=call.id, name=call.name, ok=False, error_type="Denied",
                      content=f"Error: the user denied this call to {call.name}; it was not run.{reason}")


async def run_tool_calls(cfg: LoopConfig, cid: str, calls: list[ToolCall], step: int, emit: Emit,
                         decisions: Mapping[str, Decision], repeats: Mapping[str, str]) -> list[ToolResult]:
    """Run one turn's calls and return their results in call order.

    Calls run concurrently, except calls of `Tool.sequential` tools, which run one after another in the
    order written (they share state: ``cd`` then ``mkdir``). A call denied in ``decisions`` is not run; the
    model reads the denial. A call in ``repeats`` is not run either; the model reads the earlier result.
    If the run is stopped meanwhile, calls already running get `STOP_GRACE_S` to finish; each started call
    ends up with a recorded result (its own, or "interrupted"), so a resume never runs a started call twice.
    """
    results: dict[str, ToolResult] = {}
    started: list[ToolCall] = []

    async def one(call: ToolCall) -> None:
        started.append(call)
        emit(ToolCallEvent(step=step, call=call))
        with tracing.tool_span(call) as span:
            decision = decisions.get(call.id, True)
            if call.id in repeats:
                result = _repeat(call, repeats[call.id])
            elif decision is True:
                ctx = context_for(cfg, cid, call, step, emit)
                result = await cfg.tools.call(call, ctx, timeout=cfg.tool_timeout)
            else:
                result = _denied(call, decision)
            tracing.record_tool_result(span, result.ok, result.error_type, result.content)
        results[call.id] = result
        emit(ToolResultEvent(step=step, result=result))

    async def in_order(chain: list[ToolCall]) -> None:
        for call in chain:
            await one(call)

    chain_ids = {c.id for c in calls if (t := cfg.tools.get(c.name)) is not None and t.sequential}
    work = [one(c) for c in calls if c.id not in chain_ids]
    if chain_ids:
        work.append(in_order([c for c in calls if c.id in chain_ids]))
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
