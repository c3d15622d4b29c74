"""``qwenkit bench show RUN_DIR ID``: print one record of a results file, a multi-turn trajectory step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from qwenkit.bench.errors import ResultsFileError
from qwenkit.bench.results import RESULTS_FILE, ResultRow, read_results

MAX_SHOWN = 2_000
"""Characters shown of one text (a long-context listing can be huge)."""


def _cut(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f" ... [{len(text) - MAX_SHOWN} more characters]"


def _verdict(row: ResultRow) -> Text:
    score = row.score
    ok = bool(score.get("valid"))
    line = Text("PASS" if ok else "FAIL", style="bold green" if ok else "bold red")
    if row.error:
        line.append(f"  error: {row.error}")
    elif not ok:
        turn = score.get("turn")
        line.append(f"  {score.get('reason', '')}" + (f" at turn {turn}" if turn is not None else ""))
        if score.get("detail"):
            line.append(f"\n{_cut(score['detail'])}")
        if score.get("diff"):
            line.append(f"\n{_cut(score['diff'])}")
    return line


def render_row(row: ResultRow, console: Console) -> None:
    """Print a row: its verdict, then per turn the user message and per step the model text, calls, results."""
    console.print(Text(f"{row.id}  ({row.category}, {row.duration_s:.2f} s)", style="bold"))
    console.print(_verdict(row))
    turns = row.result.get("turns")
    if not isinstance(turns, list):  # a single-turn record
        console.print(Panel(Text(_cut(row.result.get("text", ""))), title="model reply"))
        for call in row.result.get("calls", []):
            console.print(Text(f"  call {call.get('name')}({_cut(call.get('arguments'))})", style="cyan"))
        return
    for prereq in row.result.get("prereqs") or []:  # memory: the prerequisite conversations (first question)
        console.print(Text(f"prerequisite conversation {prereq.get('id', '')}", style="bold magenta"))
        _render_turns(prereq.get("turns") or [], console)
        console.print(Text(f"  memory after: {_cut(prereq.get('memory_after'))}", style="magenta"))
    if "memory" in row.result:  # memory: what the question started from
        console.print(Panel(Text(_cut(row.result["memory"])), title="memory at the question", title_align="left",
                            style="magenta"))
    _render_turns(turns, console)


def _render_turns(turns: list[Any], console: Console) -> None:
    for index, turn in enumerate(turns):
        title = f"turn {index}"
        if turn.get("added_functions"):
            title += f" (functions added: {', '.join(turn['added_functions'])})"
        console.print(Panel(Text(_cut(turn.get("user", ""))), title=title, title_align="left", style="blue"))
        for n, step in enumerate(turn.get("steps", [])):
            head = Text(f"  step {n} [{step.get('format', '')}]: ", style="bold")
            console.print(head + Text(_cut(step.get("raw_text", ""))))
            for call in step.get("calls", []):
                console.print(Text(f"    → {call.get('name')}({_cut(call.get('arguments'))})", style="cyan"))
                if call.get("arguments_error"):
                    console.print(Text(f"      arguments error: {call['arguments_error']}", style="red"))
                console.print(Text(f"      ← {_cut(call.get('result'))}", style="dim"))
            for problem in step.get("problems", []):
                console.print(Text(f"    problem: {problem}", style="yellow"))
        console.print(Text(f"  ended: {turn.get('ended', '')}", style="dim"))


def show_record(run_dir: Path, record_id: str, console: Console) -> None:
    """Print record ``record_id`` of ``run_dir/results.jsonl`` (or of the file given).

    Raises:
        ResultsFileError: The file cannot be read or has no such record.
    """
    path = run_dir if run_dir.is_file() else run_dir / RESULTS_FILE
    _, rows = read_results(path)
    row = rows.get(record_id)
    if row is None:
        shown = ", ".join(list(rows)[:5]) + (", ..." if len(rows) > 5 else "")
        raise ResultsFileError(f"{path} has no record {record_id[:80]!r} (it has {len(rows)}: {shown}).")
    render_row(row, console)
