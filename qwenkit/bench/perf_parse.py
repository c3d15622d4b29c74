"""Parse-time benchmark: hostile model replies of a few megabytes, read by every prompt format.

A model (or a server pretending to be one) can return megabytes of text built to make a parser slow:
thousands of tiny calls, an unterminated ``"name"`` string, brackets nested a million deep, one giant
broken argument, fences followed by runs of blanks, or plain random text full of markers. Every
parser should be linear in the reply length, so for each format and case this prints the parse time
at ``size_mb`` and at a tenth of it, the time per MB, and the ratio of the two times (about 10 when
parsing is linear; about 100 when it is quadratic). Cases that take a few milliseconds show ratios
above 10 from caches alone: a 0.5 MB reply fits in the CPU's cache and a 5 MB one does not.

Run it with ``python -m qwenkit.bench.perf_parse [--size-mb 5] [--format nous ...] [--json]``.
This is a measurement, not a test: nothing fails when a case is slow; the report says so.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from qwenkit.llm.formats import FORMAT_NAMES, get_format
from qwenkit.types import Completion, ToolCall

MB = 1_000_000
"""Characters per "MB" of reply (the inputs are almost all ASCII, so characters ~ bytes)."""

SLOW_PER_MB = 1.0
"""Seconds per MB above which a case is flagged as slow."""

CASES = (
    "calls",
    "unterminated_name",
    "deep_brackets",
    "giant_argument",
    "fence_blanks",
    "random_text",
    "server_calls",
)
"""Hostile inputs; ``server_calls`` (calls returned by a server's tool parser) is for ``native`` only."""

_CALL = {  # one tiny call, as each format writes it
    "react": 'Action: f\nAction Input: {"a": 1}\n',
    "qwen": '✿FUNCTION✿: f\n✿ARGS✿: {"a": 1}\n',
    "nous": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n',
}
_ARGS_AT = {  # text that opens the arguments of one call
    "react": "Thought: t\nAction: f\nAction Input: ",
    "qwen": "✿FUNCTION✿: f\n✿ARGS✿: ",
    "nous": '<tool_call>\n{"name": "f", "arguments": ',
}
_PIECES = [  # markers that end a reply's parsing (Observation:, ✿RESULT✿, <tool_response>) left out
    "Thought:", "\nAction:", "\nAction Input:", "Final Answer:", "✿FUNCTION✿:", "✿ARGS✿:", "✿", "<tool_call>",
    "</tool_call>", "<think>", "</think>", "<code>", "</code>",
    '{"name": "', '"arguments": ', "{", "}", "[", "]", '"', "'", ":", ",", "\\", "```", "```py\n", "\n", " ",
    "\t", "x", "42", "数学", "😀",
]  # fmt: skip


def _text_format(fmt: str) -> str:
    return "nous" if fmt == "native" else fmt


def _fill(head: str, unit: str, size: int, tail: str = "") -> str:
    """``head`` + ``unit`` repeated to about ``size`` characters in all + ``tail``."""
    count = max(1, (size - len(head) - len(tail)) // max(1, len(unit)))
    return head + unit * count + tail


def hostile_reply(fmt: str, case: str, size: int, seed: int = 0) -> str:
    """Return the hostile reply text of ``case`` for format ``fmt``, about ``size`` characters long.

    Args:
        fmt: A format name (``native`` gets the ``nous`` text its fallback parser reads).
        case: One of `CASES` except ``server_calls``.
        size: Length in characters.
        seed: Seed of the random text.
    """
    text_fmt = _text_format(fmt)
    args_at = _ARGS_AT[text_fmt]
    if case == "calls":
        return _fill("", _CALL[text_fmt], size)
    if case == "unterminated_name":
        head = '<tool_call>\n{"name": "' if text_fmt == "nous" else args_at + '{"name": "'
        return _fill(head, "x", size)
    if case == "deep_brackets":
        return _fill(args_at, '{"a": [', size)
    if case == "giant_argument":  # single quotes and no end: strict JSON fails, the repair path is tried
        return _fill(args_at + "{'code': '", "print('hi') # ", size)
    if case == "fence_blanks":  # a fence opening, then blanks (and a last word, so they are not trailing)
        head = "```" if text_fmt == "nous" else args_at + "```py\n"
        return _fill(head, " \t", size, tail="x")
    if case == "random_text":
        rng = random.Random(seed)
        return "".join(rng.choices(_PIECES, k=size // 4))
    raise ValueError(f"unknown case {case!r}; choose one of: {', '.join(CASES)}")


def _completion(fmt: str, case: str, size: int) -> Completion:
    if case == "server_calls":  # a server's tool parser returned a flood of calls with broken arguments
        call = ToolCall(id="call_0", name="f", raw_arguments="{'a': 1,", arguments_error="bad JSON")
        return Completion(tool_calls=(call,) * max(1, size // 40), finish_reason="tool_calls")
    return Completion(text=hostile_reply(fmt, case, size), finish_reason="stop")


def _time_parse(fmt: str, completion: Completion, repeat: int = 1) -> tuple[float, int, int]:
    """Best of ``repeat`` times to parse ``completion``, number of calls read, number of problems."""
    parser = get_format(fmt)
    best = float("inf")
    reply = None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        reply = parser.parse_completion(completion)
        best = min(best, time.perf_counter() - started)
    assert reply is not None
    return best, len(reply.tool_calls), len(reply.problems)


def run(
    size_mb: float = 5.0,
    formats: Sequence[str] = FORMAT_NAMES,
    cases: Sequence[str] = CASES,
    out: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Time every format on every hostile case at ``size_mb`` and at a tenth of it.

    Args:
        size_mb: Reply size in MB (millions of characters) of the big run.
        formats: Format names to measure.
        cases: Cases to measure (see `CASES`).
        out: Where the table lines go (``print`` by default).

    Returns:
        ``{"size_mb", "small_mb", "results": [...], "slow": [...]}``; each result has ``format``,
        ``case``, ``seconds`` (at ``size_mb``), ``seconds_small``, ``seconds_per_mb``, ``ratio`` (big
        time / small time), ``calls`` and ``problems`` (of the big reply).
    """
    if size_mb <= 0:
        raise ValueError("size_mb must be positive")
    small_mb = size_mb / 10
    results: list[dict[str, Any]] = []
    out(f"{'format':<8} {'case':<18} {small_mb:>8g} MB {size_mb:>8g} MB {'s/MB':>8} {'ratio':>6} {'calls':>6}")
    for fmt in formats:
        for case in cases:
            if case == "server_calls" and fmt != "native":
                continue
            # best of three runs each, to steady the ratio on a busy machine
            small, _, _ = _time_parse(fmt, _completion(fmt, case, int(small_mb * MB)), repeat=3)
            big, calls, problems = _time_parse(fmt, _completion(fmt, case, int(size_mb * MB)), repeat=3)
            row = {
                "format": fmt,
                "case": case,
                "seconds": big,
                "seconds_small": small,
                "seconds_per_mb": big / size_mb,
                "ratio": big / small if small > 0 else float("inf"),
                "calls": calls,
                "problems": problems,
            }
            results.append(row)
            out(
                f"{fmt:<8} {case:<18} {small:>9.3f} s {big:>9.3f} s {row['seconds_per_mb']:>8.3f} "
                f"{row['ratio']:>6.1f} {calls:>6}"
            )
    slow = [f"{r['format']}/{r['case']}" for r in results if r["seconds_per_mb"] > SLOW_PER_MB]
    out(f"slow (over {SLOW_PER_MB:g} s/MB): {', '.join(slow) if slow else 'none'}")
    return {"size_mb": size_mb, "small_mb": small_mb, "results": results, "slow": slow}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m qwenkit.bench.perf_parse``."""
    parser = argparse.ArgumentParser(
        prog="python -m qwenkit.bench.perf_parse", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--size-mb", type=float, default=5.0, help="size of the big reply (default 5)")
    parser.add_argument("--format", action="append", choices=FORMAT_NAMES, help="format to measure (repeatable)")
    parser.add_argument("--case", action="append", choices=CASES, help="case to measure (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON at the end")
    args = parser.parse_args(argv)
    if not 0 < args.size_mb <= 100:
        parser.error("--size-mb must be above 0 and at most 100")
    figures = run(args.size_mb, args.format or FORMAT_NAMES, args.case or CASES,
                  out=(lambda line: print(line, file=sys.stderr)) if args.json else print)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
