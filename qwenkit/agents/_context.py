"""Fitting a conversation into the model's context window: old observations shortened first, then old turns
dropped; the system prompt, the tools and the latest user turn are always kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from qwenkit.types import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage

CHARS_PER_TOKEN = 3.0
"""The stated estimate when no tokenizer is at hand: Qwen's tokenizer averages about 3–4 characters a token
on English and code, fewer on Chinese; 3 errs on the side of fitting."""
PER_MESSAGE_TOKENS = 8
"""Role markers and separators each message adds in the chat template (``<|im_start|>role\\n ... <|im_end|>``)."""
SHORT_OBSERVATION_CHARS = 400
"""An old observation is cut to this many characters (head and tail kept) when the conversation is too long."""

Counter = Callable[[Sequence[Message]], Awaitable[int]]


def estimate_tokens(messages: Sequence[Message], extra_chars: int = 0) -> int:
    """The stated estimate: characters / `CHARS_PER_TOKEN`, plus `PER_MESSAGE_TOKENS` per message."""
    chars = extra_chars
    for m in messages:
        chars += len(m.content)
        if isinstance(m, AssistantMessage):
            chars += len(m.reasoning) + sum(len(c.name) + len(c.raw_arguments or str(c.arguments))
                                            for c in m.tool_calls)
    return int(chars / CHARS_PER_TOKEN) + PER_MESSAGE_TOKENS * len(messages)


@dataclass(frozen=True)
class Fitted:
    """The conversation that fits, and what was cut to make it fit."""

    messages: list[Message]
    tokens_before: int
    tokens_after: int
    shortened: int
    dropped: int


def _shorten(text: str) -> str:
    if len(text) <= SHORT_OBSERVATION_CHARS:
        return text
    half = SHORT_OBSERVATION_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut to fit the context window ...]\n{text[-half:]}"


def _latest_user(messages: Sequence[Message]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], UserMessage):
            return i
    return len(messages)


async def fit(messages: Sequence[Message], budget: int, count: Counter) -> Fitted | None:
    """Cut ``messages`` until ``count`` says they take at most ``budget`` tokens; ``None`` when they fit as
    they are.

    Observations before the latest user turn are shortened first (oldest first); then whole turns before the
    latest user turn are dropped, oldest first (a tool call is dropped with its observations). System messages
    and everything from the latest user turn on are never touched, so the result may still not fit.
    """
    before = await count(messages)
    if before <= budget:
        return None
    msgs = list(messages)
    keep_from = _latest_user(msgs)
    shortened = dropped = 0
    for i in range(keep_from):
        m = msgs[i]
        if isinstance(m, ToolMessage) and len(m.content) > SHORT_OBSERVATION_CHARS:
            msgs[i] = m.model_copy(update={"content": _shorten(m.content)})
            shortened += 1
    tokens = await count(msgs)
    while tokens > budget:
        first = next((i for i in range(keep_from) if not isinstance(msgs[i], SystemMessage)), None)
        if first is None:
            break
        end = first + 1  # a turn with calls goes with its observations
        while end < keep_from and isinstance(msgs[end], ToolMessage):
            end += 1
        del msgs[first:end]
        dropped += end - first
        keep_from -= end - first
        tokens = await count(msgs)
    return Fitted(messages=msgs, tokens_before=before, tokens_after=tokens, shortened=shortened, dropped=dropped)
