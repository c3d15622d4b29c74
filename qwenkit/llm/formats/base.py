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

from qwenkit.errors import ConfigError
from qwenkit.types import AssistantMessage, Completion, Message, SystemMessage, ToolCall, ToolSpec, UserMessage

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
        prefill: Text the format wrote at the start of this reply to force a call (``tool_choice``
            naming a tool); the model's reply continues it, so read ``prefill + reply`` (see
            `with_prefill`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: list[Message]
    stop: list[str] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    continue_final: bool = False
    prefill: str = ""


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

    call_markers: tuple[str, ...] = ()
    """Text that starts a call in this format; found in the thinking, it is reported (never run)."""

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
        return _bounded(note_calls_in_thinking(reply, self.call_markers), self.max_calls)

    def parse_completion(self, completion: Completion) -> ParsedReply:
        """Read a whole reply; a call cut off by the token limit gets an argument error instead of running.

        Thinking the server split off (``Completion.reasoning``, a reasoning parser's
        ``reasoning_content``) comes first in ``reasoning``; calls written in it are reported, not run.
        """
        reply = self.parse(completion.text)
        if completion.reasoning.strip():
            reply = merge_server_reasoning(reply, completion.reasoning, self.call_markers)
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


def reply_body(text: str, response_open: str) -> tuple[str, str, list[str]]:
    """A reply's thinking, and its body cut before any tool response the model wrote itself, with notes.

    Results come from tools, never from the model: a ``<tool_response>`` it writes is dropped (noted).
    """
    reasoning, body, problems = split_think(text)
    cut = body.find(response_open)
    if cut >= 0:
        if body[cut:].strip():
            problems = [*problems, "ignored a <tool_response> written by the model (results come from tools)"]
        body = body[:cut]
    return reasoning, body, problems


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


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALLS_IN_THINKING = "ignored tool calls written inside <think> (thinking is not acted on; call outside it)"


def note_calls_in_thinking(reply: ParsedReply, markers: Sequence[str]) -> ParsedReply:
    """Add a problem note when the reply's reasoning holds a call marker (such calls are never run)."""
    if not reply.reasoning or not any(m in reply.reasoning for m in markers) or CALLS_IN_THINKING in reply.problems:
        return reply
    return reply.model_copy(update={"problems": [*reply.problems, CALLS_IN_THINKING]})


def merge_server_reasoning(reply: ParsedReply, reasoning: str, markers: Sequence[str]) -> ParsedReply:
    """Put thinking a server returned apart from the text first in ``reply.reasoning``."""
    joined = reasoning.strip() + ("\n\n" + reply.reasoning if reply.reasoning else "")
    return note_calls_in_thinking(reply.model_copy(update={"reasoning": joined}), markers)


def is_query(message: Message) -> bool:
    """Whether ``message`` is a user query, as Qwen3's template decides (not a turn of tool responses)."""
    if not isinstance(message, UserMessage):
        return False
    text = message.content
    return not (text.startswith("<tool_response>") and text.endswith("</tool_response>"))


def think_block(reasoning: str, content: str) -> str:
    """An assistant turn's text with its thinking, exactly as Qwen3's chat template writes it."""
    return f"{THINK_OPEN}\n{reasoning.strip(chr(10))}\n{THINK_CLOSE}\n\n{content.lstrip(chr(10))}"


def keep_recent_reasoning(messages: Sequence[Message]) -> list[Message]:
    """Write each assistant turn's reasoning into its text as Qwen3's chat template keeps it.

    Qwen3's template keeps thinking only for assistant turns after the last user query (the steps of
    the current tool loop) and drops it before: those turns get ``<think>\\n...\\n</think>\\n\\n`` in
    front of their text, the others lose it. ``reasoning`` is emptied on every turn so that no backend
    sends it twice. A template without thinking (Qwen2.5) then shows the block as written; Qwen3's
    reads it back and writes the same text.
    """
    last_query = len(messages) - 1
    for i in range(len(messages) - 1, -1, -1):
        if is_query(messages[i]):
            last_query = i
            break
    out: list[Message] = []
    for i, m in enumerate(messages):
        if isinstance(m, AssistantMessage) and (m.reasoning or i > last_query):
            if i > last_query and m.reasoning.strip("\n"):
                m = m.model_copy(update={"content": think_block(m.reasoning, m.content), "reasoning": ""})
            elif m.reasoning:
                m = m.model_copy(update={"reasoning": ""})
        out.append(m)
    return out


def check_tool_choice(choice: str | None, tools: Sequence[ToolSpec], format_name: str) -> str | None:
    """Validate a ``tool_choice`` for a text format: ``None``/``auto``, ``none``, ``required`` or a tool name.

    Returns:
        ``None`` for ``auto``; else the choice.

    Raises:
        ConfigError: A name that is not one of ``tools``, or a choice with no tools to choose from.
    """
    if choice is None or choice == "auto":
        return None
    if choice == "none":
        return choice
    if not tools:
        raise ConfigError(f"tool_choice {choice!r} needs tools, and none are offered")
    if choice == "required" or any(t.name == choice for t in tools):
        return choice
    names = ", ".join(t.name for t in tools)
    raise ConfigError(f"the {format_name} format cannot honour tool_choice {choice!r}: not a tool here ({names})")


def prefill_reply(messages: list[Message], prefill: str) -> list[Message]:
    """Open (or continue) the final assistant turn with ``prefill``, to force the start of a call."""
    if messages and isinstance(messages[-1], AssistantMessage):
        last = messages[-1]
        return [*messages[:-1], last.model_copy(update={"content": last.content + prefill})]
    return [*messages, AssistantMessage(content=prefill)]


def with_prefill(completion: Completion, prefill: str) -> Completion:
    """The completion as the format reads it: the rendered ``prefill`` and then the model's text."""
    if not prefill:
        return completion
    return completion.model_copy(update={"text": prefill + completion.text})


def tool_turns_as_text(messages: Sequence[Message], lang: str = "en") -> list[Message]:
    """Write past calls and results as plain user text, as Qwen-Agent does without tools.

    Qwen-Agent's ``BaseFnCallModel._remove_fncall_messages`` (used when no functions are offered or
    ``function_choice="none"``), word for word: each call becomes ``\\n\\nThe tool "NAME" was called with
    these arguments: \\nARGS`` and each result ``\\n\\nThe tool has returned the following result:
    \\nRESULT`` in a user turn; the text of an assistant turn with calls stays an assistant turn; two
    user turns in a row get an assistant ``...`` between them.
    """
    import json

    zh = lang == "zh"
    out: list[Message] = []

    def add_user_text(text: str) -> None:
        if out and isinstance(out[-1], UserMessage):
            out[-1] = UserMessage(content=out[-1].content + text)
        else:
            out.append(UserMessage(content=text))

    for m in messages:
        if isinstance(m, AssistantMessage) and m.tool_calls:
            if m.content:
                out.append(m.model_copy(update={"tool_calls": ()}))
            for call in m.tool_calls:
                if call.arguments_error is not None and call.raw_arguments:
                    args = call.raw_arguments
                else:
                    args = json.dumps(call.arguments, ensure_ascii=False)
                if zh:
                    add_user_text(f'\n\n工具"{call.name}"被调用时使用了以下参数：\n{args}')
                else:
                    add_user_text(f'\n\nThe tool "{call.name}" was called with these arguments: \n{args}')
        elif m.role == "tool":
            result = m.content or "No result."  # the same words in both languages upstream
            add_user_text(f"\n\n该工具返回了以下结果：\n{result}" if zh else
                          f"\n\nThe tool has returned the following result: \n{result}")
        else:
            if isinstance(m, UserMessage) and out and isinstance(out[-1], UserMessage):
                out.append(AssistantMessage(content="..."))
            out.append(m)
    return out


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
