"""The hermes tool-call emulation for the native format: what vLLM's ``hermes`` parser and guided decoding do.

The markers are the nous format's own (`CALL_OPEN`, `CALL_CLOSE`), so both read and write the same text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from qwenkit.errors import ModelError
from qwenkit.llm.formats.nous import CALL_CLOSE, CALL_OPEN
from qwenkit.types import ToolCall


def parse_tool_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """Read ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks, as vLLM's hermes parser.

    Args:
        text: The generated reply.

    Returns:
        The text before the first block and the calls. A block whose JSON cannot be read, or that has
        no ``name``, leaves the whole text as content and no calls, as the server does.
    """
    if CALL_OPEN not in text:
        return text, ()
    content = text[: text.index(CALL_OPEN)]
    calls: list[ToolCall] = []
    for block in text.split(CALL_OPEN)[1:]:
        body = block.split(CALL_CLOSE, 1)[0].strip()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            return text, ()
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return text, ()
        args = obj.get("arguments", {})
        raw = json.dumps(args, ensure_ascii=False)
        if isinstance(args, dict):
            calls.append(ToolCall(name=obj["name"], arguments=args, raw_arguments=raw))
        else:
            calls.append(ToolCall(name=obj["name"], raw_arguments=raw,
                                  arguments_error="the arguments are not a JSON object"))
    return content, tuple(calls)


def forced_call_prefix(tool_choice: str | None) -> str:
    """The text that opens the reply when ``tool_choice`` demands a call (``""`` otherwise)."""
    return "" if tool_choice in (None, "auto", "none") else f"{CALL_OPEN}\n"


def tool_call_grammar(tools: Sequence[Mapping[str, object]], tool_choice: str) -> str:
    """GBNF for the rest of a forced call: ``{"name": ..., "arguments": ...}`` then ``</tool_call>``.

    The name is one of the tools (``required``) or the named tool, and the arguments follow that tool's
    JSON schema, as vLLM's guided decoding does for ``tool_choice`` ``required`` or a name.

    Args:
        tools: OpenAI tool definitions.
        tool_choice: ``required`` or a tool name.

    Returns:
        The grammar source.

    Raises:
        ModelError: ``tool_choice`` names a tool that is not among ``tools``.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    functions = [_function(t) for t in tools]
    chosen = [f for f in functions if tool_choice == "required" or f.get("name") == tool_choice]
    if not chosen:
        raise ModelError(f"tool_choice {tool_choice!r} is not one of the tools")
    schema = {"anyOf": [
        {"type": "object", "required": ["name", "arguments"], "properties": {
            "name": {"const": f["name"]}, "arguments": f.get("parameters") or {"type": "object"},
        }}
        for f in chosen
    ]}
    gbnf = json_schema_to_gbnf(json.dumps(schema), prop_order=["name", "arguments"])
    return gbnf.replace("root ::=", "call ::=", 1) + f'\nroot ::= call "\\n{CALL_CLOSE}"\n'


def _function(tool: Mapping[str, object]) -> Mapping[str, object]:
    """The ``function`` part of an OpenAI tool definition (or the definition itself, if it is bare)."""
    inner = tool.get("function", tool)
    return inner if isinstance(inner, Mapping) else tool
