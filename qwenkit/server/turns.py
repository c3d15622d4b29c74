"""Run one turn of a conversation in the background, recording its events as they happen.

The turn is an `asyncio.Task` of its own: a client that drops its event stream does not stop it, and
`stop` cancels it (which cancels the model call and interrupts a running cell; see `KernelSession`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import TypeAdapter

from qwenkit._untrusted import cap_text, clean_text
from qwenkit.agents.agent import Agent
from qwenkit.agents.conversation import tool_message
from qwenkit.agents.events import (
    AssistantTurn,
    Event,
    OutputRetry,
    RunFinished,
    RunStarted,
    ToolCallEvent,
    ToolResultEvent,
)
from qwenkit.errors import QwenkitError
from qwenkit.server.conversations import TURN_ENDED, Conversation
from qwenkit.types import AssistantMessage, Message, ToolMessage, UserMessage

log = logging.getLogger(__name__)

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
STOPPED_NOTE = "(stopped by the user before this call finished)"


def figure_url(cid: str, number: int) -> str:
    """URL of a conversation's figure."""
    return f"/api/conversations/{cid}/figures/{number}"


def event_data(conv: Conversation, event: Event) -> dict[str, Any]:
    """The JSON object sent for ``event``; a tool result's images get URLs (their host paths stay private)."""
    data: dict[str, Any] = event.model_dump(mode="json")
    if isinstance(event, ToolResultEvent):
        urls = []
        for path in event.result.images:
            number = len(conv.figures) + 1
            conv.figures[number] = path
            urls.append(figure_url(conv.id, number))
        data["result"]["images"] = urls
    return data


def rebuild_history(events: list[dict[str, Any]]) -> list[Message] | None:
    """The conversation a stopped turn leaves: what it had done, calls left unanswered marked stopped."""
    messages: list[Message] | None = None
    for data in events:
        kind = data.get("type")
        if kind not in ("run_started", "assistant_turn", "tool_result", "output_retry"):
            continue
        event = _EVENT.validate_python(data)
        if isinstance(event, RunStarted):
            messages = list(event.messages)
        elif messages is None:
            continue
        elif isinstance(event, AssistantTurn):
            messages.append(event.message)
        elif isinstance(event, ToolResultEvent):
            messages.append(tool_message(event.result))
        elif isinstance(event, OutputRetry):
            messages.append(UserMessage(content=event.message))
    if messages is None:
        return None
    last = next((m for m in reversed(messages) if isinstance(m, AssistantMessage)), None)
    if last is not None and last.tool_calls:
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        messages += [ToolMessage(tool_call_id=c.id, name=c.name, content=STOPPED_NOTE)
                     for c in last.tool_calls if c.id not in answered]
    return messages


async def run_turn(agent: Agent[Any], conv: Conversation, prompt: str) -> None:
    """Run ``prompt`` as the conversation's next turn, appending every event to ``conv``.

    Always ends with a ``turn_ended`` event whose ``status`` is the run's status, ``stopped`` (cancelled
    by `stop`) or ``failed`` (an error the run could not turn into a result, e.g. no sandbox here).
    """
    first = conv.last_id + 1
    conv.append({"type": "turn_started", "prompt": prompt})
    status = "failed"
    history_before = list(conv.history)
    try:
        stream = agent.stream(prompt, history=conv.history or None, conversation_id=conv.id,
                              transcript=conv.transcript)
        # `stream` is an async generator (typed as an iterator): closing it stops the run at once.
        async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, ToolCallEvent) and event.call.name == "code_interpreter":
                    conv.sandbox_used = True
                conv.append(event_data(conv, event))
                if isinstance(event, RunFinished):
                    conv.history = list(event.result.messages)
                    status = event.result.status
    except asyncio.CancelledError:
        status = "stopped"
        rebuilt = rebuild_history([e.data for e in conv.after(first - 1)])
        conv.history = rebuilt if rebuilt is not None else history_before
        conv.append({"type": "turn_stopped", "message": "stopped by the user"})
    except QwenkitError as err:
        conv.append(_failure(err))
    except Exception as err:  # a bug or a tool's own failure: the client gets its name, the log the traceback
        log.exception("turn of conversation %s failed", conv.id)
        conv.append(_failure(err))
    finally:
        conv.append({"type": TURN_ENDED, "status": status})


def _failure(err: BaseException) -> dict[str, Any]:
    text = clean_text(str(err) or type(err).__name__)[0]
    return {"type": "turn_failed", "error_type": type(err).__name__, "message": cap_text(text, 4000)}
