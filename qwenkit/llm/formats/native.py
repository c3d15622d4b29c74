"""The server's own tool calling: OpenAI ``tools`` in the request, ``tool_calls`` in the reply.

For servers that apply the model's chat template to ``tools`` and run a tool parser (vLLM
``--enable-auto-tool-choice --tool-call-parser hermes``, llama.cpp ``--jinja``). Messages are sent as
they are; the backend writes `AssistantMessage.tool_calls` and `ToolMessage` in the OpenAI shape.

A server without a tool parser returns the calls as text; `NativeFormat.parse` then reads the
``<tool_call>`` blocks the Qwen templates produce (the Nous format, see `qwenkit.llm.formats.nous`, or
Qwen3-Coder's ``<function=...>`` calls, see `qwenkit.llm.formats.qwen3_coder`). With vLLM's
``--tool-call-parser qwen3_coder`` the server reads those calls itself and nothing here changes.
Thinking a reasoning parser returned (``Completion.reasoning``) becomes ``ParsedReply.reasoning``.

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
    merge_server_reasoning,
    split_think,
)
from qwenkit.llm.formats.nous import CALL_OPEN, NousFormat
from qwenkit.llm.formats.qwen3_coder import FUNCTION_OPEN, Qwen3CoderFormat
from qwenkit.types import Completion, Message, ToolCall, ToolSpec

_CALL_MARKERS = (CALL_OPEN, FUNCTION_OPEN)
"""Call openings (hermes, qwen3_coder) that, in the server's reasoning, are noted as not run."""


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
        self._coder = Qwen3CoderFormat(max_calls=max_calls)

    def render(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], *, tool_choice: str | None = None
    ) -> RenderedPrompt:
        """Return the messages unchanged and the tools as OpenAI ``tools`` (``None`` when there are none).

        ``tool_choice`` (for this prompt) overrides the format's; the server applies it.
        """
        schemas = [t.openai_schema() for t in tools]
        self._coder.use_tools(tools)
        choice = tool_choice or self.tool_choice
        return RenderedPrompt(messages=list(messages), tools=schemas or None, tool_choice=choice if schemas else None)

    def parse(self, text: str) -> ParsedReply:
        """Read calls a server without a tool parser left in the text. Never raises.

        ``<tool_call>`` JSON blocks (Qwen2.5/Qwen3) are read as the nous format does; a reply with
        ``<function=`` and no JSON call (Qwen3-Coder) as the qwen3_coder format does.
        """
        return self._text_format(text).parse(text)

    def _text_format(self, text: str) -> NousFormat | Qwen3CoderFormat:
        return self._coder if FUNCTION_OPEN in text and '{"name"' not in text else self._text

    def parse_completion(self, completion: Completion) -> ParsedReply:
        """Take the server's parsed calls, or read them from the text when there are none.

        Arguments the server could not decode are read again forgivingly (json5, json_repair). Never
        raises; at most ``max_calls`` calls are kept.
        """
        if not completion.tool_calls:
            return self._text_format(completion.text).parse_completion(completion)
        try:
            reasoning, content, problems = split_think(completion.text)
            kept = cap_calls(completion.tool_calls, self.max_calls, problems)
            budget = RepairBudget()
            calls = [_reread(c, budget) for c in kept]
            reply = ParsedReply(content=content.strip(), reasoning=reasoning, tool_calls=calls, problems=problems)
            if completion.reasoning.strip():  # a reasoning parser's reasoning_content
                reply = merge_server_reasoning(reply, completion.reasoning, _CALL_MARKERS)
            return reply
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
