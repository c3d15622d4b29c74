"""Make a parsed reply safe to store and show: encodable text, bounded argument nesting."""

from __future__ import annotations

from qwenkit._untrusted import MAX_JSON_DEPTH, clean_json, clean_text, json_depth
from qwenkit.llm.formats.base import ParsedReply
from qwenkit.types import ToolCall


def _clean_call(call: ToolCall, problems: list[str]) -> ToolCall:
    if json_depth(call.arguments) > MAX_JSON_DEPTH:
        problems.append(f"the arguments of {call.name[:80]!r} are nested deeper than {MAX_JSON_DEPTH} levels")
        return call.model_copy(update={
            "arguments": {}, "raw_arguments": clean_text(call.raw_arguments[:10_000])[0],
            "arguments_error": f"the arguments are nested deeper than {MAX_JSON_DEPTH} levels; write them flatter",
        })
    name, n1 = clean_text(call.name)
    raw, n2 = clean_text(call.raw_arguments)
    args, n3 = clean_json(call.arguments)
    err, n4 = clean_text(call.arguments_error) if call.arguments_error is not None else (None, False)
    if not (n1 or n2 or n3 or n4):
        return call
    problems.append(f"replaced invalid characters (lone surrogates) in the call to {name[:80]!r}")
    return call.model_copy(update={"name": name, "raw_arguments": raw, "arguments": args, "arguments_error": err})


def sanitize_reply(parsed: ParsedReply, raw_text: str) -> tuple[ParsedReply, str]:
    """Replace lone surrogates (unencodable) and flatten over-deep arguments, noting each fix in ``problems``.

    A model can write anything; what the loop stores in a transcript, prints or sends back must encode as
    UTF-8 and serialise without overflowing the recursion limit.

    Returns:
        The safe reply and the safe raw text.
    """
    problems = list(parsed.problems)
    raw, hit_raw = clean_text(raw_text)
    content, hit_content = clean_text(parsed.content)
    reasoning, hit_reasoning = clean_text(parsed.reasoning)
    if hit_raw or hit_content or hit_reasoning:
        problems.append("replaced invalid characters (lone surrogates) in the reply")
    calls = [_clean_call(c, problems) for c in parsed.tool_calls]
    if len(problems) == len(parsed.problems):
        return parsed, raw_text
    return parsed.model_copy(update={
        "content": content, "reasoning": reasoning, "tool_calls": calls, "problems": problems,
    }), raw
