"""Qwen's ReAct prompt format (Question / Thought / Action / Action Input / Observation / Final Answer).

Upstream templates followed:

- ``QwenLM/Qwen`` ``examples/react_prompt.md``: ``TOOL_DESC`` and ``REACT_PROMPT`` word for word (tool
  lines joined by a blank line, tool names joined by ``,``, "Format the arguments as a JSON object."),
  and the stop words ``Observation:`` and ``Observation:\\n``.
- ``QwenLM/Qwen`` ``openai_api.py`` (``parse_messages`` / ``parse_response``): the instruction goes
  into the latest user message as ``{instruction}\\n\\nQuestion: {query}``; past calls are written back
  into the assistant turn as ``Thought: ...\\nAction: ...\\nAction Input: ...``, results as
  ``\\nObservation: ...``, later steps joined with ``\\n``, an open turn ends with ``\\nThought:`` for the
  model to continue, and past answers read ``Thought: I now know the final answer.\\nFinal Answer: ...``.
- ``QwenLM/Qwen-Agent`` ``qwen_agent/agents/react_chat.py`` (``_detect_tool``): a reply that stops
  after ``Action Input:`` without the (swallowed) stop word is still a call; a fenced code argument
  gets a newline before it; the code tool's hint ("Enclose the code within triple backticks ...").

qwenkit's additions: parallel calls are written as several ``Action`` / ``Action Input`` pairs, each
followed by its ``Observation``; parsing is forgiving (see `ReActFormat.parse`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from qwenkit.errors import ConfigError
from qwenkit.llm.formats._json import RepairBudget, arguments_text, call_json, is_code_tool, make_call
from qwenkit.llm.formats.base import (
    DEFAULT_MAX_CALLS,
    ParsedReply,
    RenderedPrompt,
    TextFormat,
    check_tool_choice,
    split_think,
    too_many_calls,
)
from qwenkit.types import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)

TOOL_DESC = (
    "{name_for_model}: Call this tool to interact with the {name_for_human} API. "
    "What is the {name_for_human} API useful for? {description_for_model} Parameters: {parameters} "
    "{args_format}"
)

REACT_PROMPT = """Answer the following questions as best you can. You have access to the following tools:

{tool_descs}

Use the following format:

Question: the input question you must answer
Thought: you should always think about what to do
Action: the action to take, should be one of [{tool_names}]
Action Input: the input to the action
Observation: the result of the action
... (this Thought/Action/Action Input/Observation can be repeated zero or more times)
Thought: I now know the final answer
Final Answer: the final answer to the original input question

Begin!

Question: {query}"""

ARGS_FORMAT_JSON = "Format the arguments as a JSON object."
ARGS_FORMAT_CODE = "Enclose the code within triple backticks (`) at the beginning and end of the code."
FINAL_THOUGHT = "I now know the final answer."
STOP_WORDS = ("Observation:", "Observation:\n")

# Possessive blank runs (``*+``): the same matches, without retrying every shorter run on a failure.
_MARKER = re.compile(
    r"^[ \t]*+(thought|action[ \t]++input|action|observation|final[ \t]++answer)[ \t]*+[:：]",
    re.MULTILINE | re.IGNORECASE,
)
_PARTIAL_OBSERVATION = re.compile(
    r"\n[ \t]*+(?:O|Ob|Obs|Obse|Obser|Observ|Observa|Observat|Observati"
    r"|Observatio|Observation)[ \t]*+\Z"
)


def tool_description(spec: ToolSpec) -> str:
    """Return the ReAct description line of one tool (Qwen's ``TOOL_DESC``)."""
    return TOOL_DESC.format(
        name_for_model=spec.name,
        name_for_human=spec.display_name,
        description_for_model=spec.description,
        parameters=json.dumps(spec.parameters, ensure_ascii=False),
        args_format=ARGS_FORMAT_CODE if is_code_tool(spec) else ARGS_FORMAT_JSON,
    ).rstrip()


def react_prompt(tools: Sequence[ToolSpec], query: str) -> str:
    """Return Qwen's ReAct instruction with the tool descriptions and ``query``."""
    return REACT_PROMPT.format(
        tool_descs="\n\n".join(tool_description(t) for t in tools),
        tool_names=",".join(t.name for t in tools),
        query=query,
    )


class ReActFormat(TextFormat):
    """Qwen's ReAct template: tools and instruction in the user message, calls as text.

    `render` folds each assistant turn (calls and their observations) into one assistant message;
    when the conversation ends inside a turn it ends with ``\\nThought:`` and ``continue_final`` is
    set, so the backend must let the model continue that message rather than open a new one.

    Args:
        max_calls: Most calls read from one reply; further calls are dropped and reported.
    """

    name: str = "react"

    def __init__(self, *, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        super().__init__(max_calls=max_calls)

    def render(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], *, tool_choice: str | None = None
    ) -> RenderedPrompt:
        """Write the conversation in ReAct form.

        Args:
            messages: System?, user, assistant, tool, ... messages.
            tools: The tools the model may call; none means a plain conversation.
            tool_choice: ``auto``/``None`` or ``none`` (the tools are left out). ReAct cannot force a
                call (Qwen-Agent's ReActChat has no ``function_choice`` either).

        Returns:
            The messages to send, the ``Observation:`` stop words and ``continue_final``.

        Raises:
            ConfigError: ``tool_choice`` is ``required`` or a tool name.
        """
        choice = check_tool_choice(tool_choice, tools, self.name)
        if choice not in (None, "none"):
            raise ConfigError(f"the react format cannot force a call (tool_choice {choice!r}); use nous or qwen")
        tools = [] if choice == "none" else list(tools)
        last_user = max((i for i, m in enumerate(messages) if isinstance(m, UserMessage)), default=-1)
        out: list[Message] = []
        fold: list[str] = []
        i, n = 0, len(messages)
        while i < n:
            m = messages[i]
            if isinstance(m, AssistantMessage | ToolMessage):
                start = i + 1 if isinstance(m, AssistantMessage) else i
                j = start
                while j < n and isinstance(messages[j], ToolMessage):
                    j += 1
                results = [r for r in messages[start:j] if isinstance(r, ToolMessage)]
                step = m if isinstance(m, AssistantMessage) else AssistantMessage()
                fold.append(_step(step, results, final_as_react=bool(tools)))
                i = j
                continue
            if fold:
                out.append(AssistantMessage(content="\n".join(fold)))
                fold = []
            if isinstance(m, UserMessage) and i == last_user and tools:
                out.append(UserMessage(content=react_prompt(tools, m.content)))
            else:
                out.append(m)
            i += 1
        if fold:
            text = "\n".join(fold)
            if isinstance(messages[-1], ToolMessage):
                text += "\nThought:"
            out.append(AssistantMessage(content=text))
        return RenderedPrompt(messages=out, stop=list(STOP_WORDS), continue_final=bool(fold))

    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        """Return ``Action: name`` / ``Action Input: {...}`` lines for ``calls``, one pair per call.

        The arguments are one line of JSON, so nothing in them can start a marker line.
        """
        return "\n".join(f"Action: {call.name}\nAction Input: {_call_arguments(call)}" for call in calls)

    def _parse(self, text: str) -> ParsedReply:
        """Read a ReAct reply.

        The reply is cut at the first ``Observation:`` (the model must not write its own results);
        a reply that stops after ``Action Input:`` is a call whether or not the server kept the stop
        word. Several ``Action``/``Action Input`` pairs are parallel calls. Text before ``Thought:``
        is content; the thought is reasoning (text before the first marker too, since an open turn
        is continued right after ``Thought:``). Without a ``Final Answer:`` marker the whole reply is
        taken as the answer.
        """
        return _parse(text, self.max_calls)


# --------------------------------------------------------------------------------------- rendering


def _step(m: AssistantMessage, results: list[ToolMessage], *, final_as_react: bool) -> str:
    """One step of an assistant turn: thought, calls, each followed by its observation."""
    if not m.tool_calls:
        observations = "".join(f"\nObservation: {_clean(r.content)}" for r in results)
        if not m.content and not m.reasoning and results:  # observations without a call
            return observations.lstrip("\n")
        if not final_as_react and not m.reasoning:
            return _clean(m.content) + observations
        thought = _clean(m.reasoning) or FINAL_THOUGHT
        return f"Thought: {thought}\nFinal Answer: {_clean(m.content)}" + observations
    reasoning, content = _clean(m.reasoning), _clean(m.content)
    if reasoning and content:
        parts = [f"{content}\nThought: {reasoning}"]
    else:
        parts = [f"Thought: {reasoning or content}".rstrip()]
    for call, result in _pair(m.tool_calls, results):
        if call is not None:
            args = arguments_text(call)
            if args.startswith("```"):
                args = "\n" + args
            parts.append(f"\nAction: {call.name}\nAction Input: {args}")
        if result is not None:
            parts.append(f"\nObservation: {_clean(result.content)}")
    return "".join(parts)


def _pair(calls: Sequence[ToolCall], results: list[ToolMessage]) -> list[tuple[ToolCall | None, ToolMessage | None]]:
    """Match results to calls by id, then in order; unmatched results come last."""
    left = list(results)
    matched: list[ToolMessage | None] = []
    for call in calls:
        hit = next((r for r in left if r.tool_call_id == call.id), None)
        if hit is not None:
            left.remove(hit)
        matched.append(hit)
    ids = {c.id for c in calls}
    spare = [r for r in left if r.tool_call_id not in ids]
    for k, hit in enumerate(matched):
        if hit is None and spare:
            matched[k] = spare.pop(0)
    pairs: list[tuple[ToolCall | None, ToolMessage | None]] = list(zip(calls, matched, strict=True))
    pairs += [(None, r) for r in spare]
    return pairs


def _call_arguments(call: ToolCall) -> str:
    """Argument text of a call written by `ReActFormat.render_calls`: JSON that reads back the same."""
    if call.arguments_error is not None and call.raw_arguments.strip():
        return call.raw_arguments.strip()
    return call_json(call.arguments, ("<think>", "</think>"))


def _clean(text: str) -> str:
    return text.lstrip("\n").rstrip()


# ----------------------------------------------------------------------------------------- parsing


def _kind(match: re.Match[str]) -> str:
    return " ".join(match.group(1).lower().split())


def _parse(text: str, max_calls: int) -> ParsedReply:
    problems: list[str] = []
    think, text, more = split_think(text)
    problems += more

    # One scan for the markers: those after an 'Observation:' are dropped with the text they are in,
    # and the partial 'Observation' removed below holds no colon, so it holds no marker either.
    markers = list(_MARKER.finditer(text))
    kinds = [_kind(m) for m in markers]
    if "observation" in kinds:
        cut = kinds.index("observation")
        observation = markers[cut]
        if text[observation.end() :].strip():
            problems.append("ignored what the model wrote after 'Observation:' (results come from tools)")
        text = text[: observation.start()]
        markers, kinds = markers[:cut], kinds[:cut]
    text = _PARTIAL_OBSERVATION.sub("", text)

    preamble = text[: markers[0].start()] if markers else text
    thoughts: list[str] = []
    actions: list[list[str | None]] = []
    final: str | None = None
    for k, (m, kind) in enumerate(zip(markers, kinds, strict=True)):
        end = markers[k + 1].start() if k + 1 < len(markers) else len(text)
        segment = text[m.end() : end]
        if kind == "final answer":
            final = text[m.end() :]
            break
        if kind == "thought":
            thoughts.append(segment.strip())
        elif kind == "action":
            actions.append([segment.strip(), None])
        elif actions and actions[-1][1] is None:
            actions[-1][1] = segment
        else:
            problems.append("'Action Input:' without an 'Action:' before it; the tool name is empty")
            actions.append(["", segment])

    saw_thought = bool(thoughts)
    if actions:
        if len(actions) > max_calls:  # the rest are counted, never parsed
            problems.append(too_many_calls(len(actions), max_calls))
            actions = actions[:max_calls]
        calls = []
        budget = RepairBudget()
        for name, args in actions:
            if args is None:
                problems.append(f"'Action: {(name or '')[:80]}' has no 'Action Input:'; called with no arguments")
            calls.append(make_call(name or "", args or "", budget))
        if final is not None:
            problems.append("ignored a 'Final Answer:' written in the same reply as a call")
        if saw_thought:
            content, reasoning = preamble.strip(), "\n".join(t for t in thoughts if t)
        else:
            content, reasoning = "", preamble.strip()
        return ParsedReply(content=content, reasoning=_join(think, reasoning), tool_calls=calls, problems=problems)
    if final is not None:
        reasoning = "\n".join(t for t in [preamble.strip(), *thoughts] if t)
        return ParsedReply(content=final.strip(), reasoning=_join(think, reasoning), problems=problems)
    if saw_thought:
        problems.append("no 'Final Answer:'; the whole reply is taken as the answer")
        content = re.sub(r"^[ \t]*thought[ \t]*[:：][ \t]*", "", text.strip(), count=1, flags=re.IGNORECASE)
    else:
        content = text.strip()
    return ParsedReply(content=content, reasoning=think, problems=problems)


def _join(first: str, second: str) -> str:
    return "\n\n".join(p for p in (first, second) if p)
