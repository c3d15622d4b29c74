"""What every prompt format shares: the `PromptFormat` protocol, its result types, and `TextFormat`.

`TextFormat` is the base of the formats that write tool calls as text (react, qwen, nous), modelled on
Qwen-Agent's ``BaseFnCallPrompt``: it holds what is the same for all of them, written once here —

- the safe `TextFormat.parse` wrapper: a format's own ``_parse`` may fail on a string nobody thought
  of, `parse` never raises, and it never returns more than ``max_calls`` calls;
- `TextFormat.parse_completion`: a call cut off by the token limit (finish reason ``length``) gets an
  argument error instead of running, and the cut is noted in ``problems``;
- `TextFormat._add_system_text`: the tool text appended to the conversation's system message (or sent
  as one);
- the helpers every reply needs (`split_think`, `cap_calls`).

Each subclass keeps only its own markers, templates and rules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.types import Completion, Message, SystemMessage, ToolCall, ToolSpec

DEFAULT_MAX_CALLS = 64
"""Calls read from one reply unless a format is told otherwise; the rest are dropped and reported."""

MAX_PROBLEMS = 32
"""Problem notes kept per reply; a hostile reply can trigger one per marker, so the rest are counted."""

TRUNCATED = "the reply hit the token limit (max_tokens) before this call was complete"

_T = TypeVar("_T")


class RenderedPrompt(BaseModel):
    """What a format hands to a backend.

    Attributes:
        messages: The messages to send (tools folded into the system or user text, past calls and
            observations written in the format's own markers).
        stop: Stop words for this format.
        tools: OpenAI ``tools`` definitions; only the native format sets them.
        tool_choice: ``auto``, ``required``, ``none`` or a tool name, with ``tools`` only.
        continue_final: The last message is a partial assistant turn the model continues.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: list[Message]
    stop: list[str] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    continue_final: bool = False


class ParsedReply(BaseModel):
    """A model reply read by a format. Parsing never raises; what went wrong is in ``problems``.

    Attributes:
        content: Text for the reader (the final answer when there are no calls).
        reasoning: The model's thinking, where the format marks it.
        tool_calls: Calls found, in order. A call whose arguments could not be read has
            ``arguments_error`` set; the registry turns it into an observation the model can correct.
        problems: Human-readable notes on what was repaired or could not be read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


@runtime_checkable
class PromptFormat(Protocol):
    """A way of writing tools and tool turns for a model, and of reading its replies."""

    name: str

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> RenderedPrompt:
        """Write the conversation and the tool descriptions in this format."""
        ...

    def parse(self, text: str) -> ParsedReply:
        """Read a reply's text. Must not raise for any string."""
        ...

    def parse_completion(self, completion: Completion) -> ParsedReply:
        """Read a whole reply; text formats call `parse` on its text, native reads its tool calls."""
        ...


def check_max_calls(max_calls: int) -> int:
    """Return ``max_calls`` if it is a whole number of at least 1, else raise ``ValueError``."""
    if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 1:
        raise ValueError(f"max_calls must be a whole number of at least 1, not {max_calls!r}")
    return max_calls


class TextFormat(ABC):
    """Base of the formats that write tools and calls as text in the messages (react, qwen, nous).

    Subclasses set ``name`` and implement `render`, `render_calls` and ``_parse``; they may override
    ``_last_call_complete`` when their calls have a closing marker.

    Args:
        max_calls: Most calls read from one reply; further calls are dropped and reported in
            ``problems`` (a reply of 200,000 tiny calls must not become 200,000 tool runs).
    """

    name: str

    def __init__(self, *, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        self.max_calls = check_max_calls(max_calls)

    @abstractmethod
    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> RenderedPrompt:
        """Write the conversation and the tool descriptions in this format."""

    @abstractmethod
    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        """Return the reply text a model would write to make ``calls``, which `parse` reads back.

        Names and arguments survive the round trip (arguments are written as JSON, with any
        character that would be read as one of the format's markers written as a ``\\u`` escape);
        a call whose ``arguments_error`` is set is written with its raw text.
        """

    @abstractmethod
    def _parse(self, text: str) -> ParsedReply:
        """Read ``text`` in this format, keeping at most ``self.max_calls`` calls (see `cap_calls`).

        May raise on a string nobody foresaw; `parse` turns that into a problem.
        """

    def parse(self, text: str) -> ParsedReply:
        """Read a reply's text. Never raises, and returns at most ``max_calls`` calls.

        Args:
            text: The reply as the model wrote it (anything but a string reads as an empty reply).
        """
        text = text if isinstance(text, str) else ""
        try:
            reply = self._parse(text)
        except Exception as exc:  # last resort; every _parse is written not to raise
            detail = str(exc)[:200]
            return ParsedReply(content=text, problems=[f"could not parse the reply ({type(exc).__name__}: {detail})"])
        return _bounded(reply, self.max_calls)

    def parse_completion(self, completion: Completion) -> ParsedReply:
        """Read a whole reply; a call cut off by the token limit gets an argument error instead of running."""
        reply = self.parse(completion.text)
        return mark_truncated(
            reply, completion.finish_reason, last_call_complete=self._last_call_complete(completion.text)
        )

    def _last_call_complete(self, text: str) -> bool:
        """Whether the reply's last call is visibly whole (its closing marker was written).

        Formats without a closing marker cannot tell, so a reply cut by the token limit always has its
        last call marked.
        """
        return False

    @staticmethod
    def _add_system_text(messages: list[Message], system: str) -> list[Message]:
        """Append ``system`` to the first message if it is a system message (after a blank line), or
        put it first as a system message of its own, as Qwen-Agent's function-calling prompts do."""
        out = list(messages)
        if out and isinstance(out[0], SystemMessage):
            out[0] = SystemMessage(content=out[0].content + "\n\n" + system)
        else:
            out.insert(0, SystemMessage(content=system))
        return out


# ------------------------------------------------------------------------------------ reply helpers


def too_many_calls(found: int, kept: int) -> str:
    """The problem note for a reply with more calls than a format reads."""
    return f"the reply had {found} calls; kept the first {kept} (max_calls) and dropped the rest"


def cap_calls(items: Sequence[_T], max_calls: int, problems: list[str]) -> Sequence[_T]:
    """Keep the first ``max_calls`` of ``items`` (calls, or the cheap pieces of text that become calls),
    noting in ``problems`` how many there were when some are dropped.

    Formats cap the pieces before reading their arguments, so the dropped calls cost no JSON parsing.
    """
    if len(items) <= max_calls:
        return items
    problems.append(too_many_calls(len(items), max_calls))
    return items[:max_calls]


def _bounded(reply: ParsedReply, max_calls: int) -> ParsedReply:
    """Enforce ``max_calls`` (a safety net behind the formats' own capping) and `MAX_PROBLEMS`."""
    problems = list(reply.problems)
    calls = list(cap_calls(reply.tool_calls, max_calls, problems))
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - (MAX_PROBLEMS - 1)
        problems = [*problems[: MAX_PROBLEMS - 1], f"... and {more} more problems of the same kinds"]
    if len(calls) == len(reply.tool_calls) and problems == reply.problems:
        return reply
    return reply.model_copy(update={"tool_calls": calls, "problems": problems})


def split_think(text: str) -> tuple[str, str, list[str]]:
    """Split a leading ``<think>...</think>`` block (Qwen3 thinking) off a reply.

    Servers without a reasoning parser return the thinking in the text; when the template opened the
    block itself the text has only the closing tag.

    Returns:
        ``(reasoning, rest, problems)``.
    """
    close = text.find("</think>")
    if close >= 0:
        head, rest = text[:close], text[close + len("</think>") :]
        opened = head.find("<think>")
        if opened >= 0:
            rest = head[:opened] + rest
            head = head[opened + len("<think>") :]
        return head.strip(), rest, []
    opened = text.find("<think>")
    if opened >= 0 and not text[:opened].strip():
        return text[opened + len("<think>") :].strip(), "", ["the reply ended inside <think>; no answer"]
    return "", text, []


def mark_truncated(reply: ParsedReply, finish_reason: str | None, *, last_call_complete: bool) -> ParsedReply:
    """Turn the last call of a reply cut off by the token limit into a call with an argument error.

    Running a half-written call (truncated code, a guessed closing brace) is worse than asking the
    model to write it again, so the registry is given an error to report instead, and the cut is
    noted in ``problems``.

    Args:
        reply: The parsed reply.
        finish_reason: The backend's finish reason; only ``"length"`` changes anything.
        last_call_complete: The format saw the call's closing marker, so it is whole.
    """
    if finish_reason != "length" or not reply.tool_calls or last_call_complete:
        return reply
    last = reply.tool_calls[-1]
    cut = last.model_copy(update={"arguments": {}, "arguments_error": TRUNCATED})
    return reply.model_copy(
        update={
            "tool_calls": [*reply.tool_calls[:-1], cut],
            "problems": [*reply.problems, f"{TRUNCATED}: {last.name[:80]}"],
        }
    )
