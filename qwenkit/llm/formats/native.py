"""The server's own tool calling: OpenAI ``tools`` in the request, ``tool_calls`` in the reply.

For servers that apply the model's chat template to ``tools`` and run a tool parser (vLLM
``--enable-auto-tool-choice --tool-call-parser hermes``, llama.cpp ``--jinja``). Messages are sent as
they are; the backend writes `AssistantMessage.tool_calls` and `ToolMessage` in the OpenAI shape.

A server without a tool parser returns the calls as text; `NativeFormat.parse` then reads the
``<tool_call>`` blocks the Qwen templates produce (the Nous format, see `qwenkit.llm.formats.nous`).

The native format has no ``render_calls``: a reply with calls is a `Completion` whose ``tool_calls``
holds them, not text (`qwenkit.testing.TestModel` builds that directly).
"""

from __future__ import annotations

from collections.abc import Sequence

from qwenkit.llm.formats._json import RepairBudget, parse_arguments
from qwenkit.llm.formats.base import (
    DEFAULT_MAX_CALLS,
    ParsedReply,
    RenderedPrompt,
    cap_calls,
    check_max_calls,
    split_think,
)
from qwenkit.llm.formats.nous import NousFormat
from qwenkit.types import Completion, Message, ToolCall, ToolSpec


class NativeFormat:
    """Pass the conversation and tools to the server; read the calls its tool parser returns.

    Args:
        tool_choice: ``auto``, ``required``, ``none`` or a tool name, put on every rendered prompt
            that has tools (an agent's own ``tool_choice`` wins). ``None`` leaves it to the server.
        max_calls: Most calls taken from one reply (the server's or those read from the text);
            further calls are dropped and reported.
    """

    name: str = "native"

    def __init__(self, tool_choice: str | None = None, *, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        self.tool_choice = tool_choice
        self.max_calls = check_max_calls(max_calls)
        self._text = NousFormat(max_calls=max_calls)

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> RenderedPrompt:
        """Return the messages unchanged and the tools as OpenAI ``tools`` (``None`` when there are none)."""
        schemas = [t.openai_schema() for t in tools]
        return RenderedPrompt(messages=list(messages), tools=schemas or None,
                              tool_choice=self.tool_choice if schemas else None)

    def parse(self, text: str) -> ParsedReply:
        """Read calls a server without a tool parser left in the text (``<tool_call>`` blocks). Never raises."""
        return self._text.parse(text)

    def parse_completion(self, completion: Completion) -> ParsedReply:
        """Take the server's parsed calls, or read them from the text when there are none.

        Arguments the server could not decode are read again forgivingly (json5, json_repair). Never
        raises; at most ``max_calls`` calls are kept.
        """
        if not completion.tool_calls:
            return self._text.parse_completion(completion)
        try:
            reasoning, content, problems = split_think(completion.text)
            kept = cap_calls(completion.tool_calls, self.max_calls, problems)
            budget = RepairBudget()
            calls = [_reread(c, budget) for c in kept]
            return ParsedReply(content=content.strip(), reasoning=reasoning, tool_calls=calls, problems=problems)
        except Exception as exc:  # last resort; nothing above should raise
            return ParsedReply(
                content=completion.text,
                tool_calls=list(completion.tool_calls[: self.max_calls]),
                problems=[f"could not read the reply ({type(exc).__name__}: {str(exc)[:200]})"],
            )


def _reread(call: ToolCall, budget: RepairBudget) -> ToolCall:
    """Re-read arguments the backend left unparsed or could not parse strictly."""
    name = call.name.strip()
    raw = call.raw_arguments.strip()
    if raw and not call.arguments and (call.arguments_error is not None or raw not in ("{}", "null")):
        arguments, error = parse_arguments(raw, budget)
        return call.model_copy(update={"name": name, "arguments": arguments, "arguments_error": error})
    if name != call.name:
        return call.model_copy(update={"name": name})
    return call
