"""Benchmark reports: per-category numbers (a `Summary`), and the files ``report.json``, ``report.md``, ``scores.png``.

The result types themselves (`Summary`, `GroupCount`, `ResultRow`, `RunOutcome`) live in `qwenkit.bench.results`.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qwenkit.bench.errors import OutputUnusable
from qwenkit.bench.results import GroupCount, ResultRow, RunOutcome, Summary


def row_value(row: ResultRow) -> float:
    """A row's score in [0, 1]; an errored row scores 0."""
    if row.status != "ok":
        return 0.0
    return float(row.score.get("value", 0.0))


def category_summary(
    rows: Sequence[ResultRow], categories: Sequence[str] | None = None, overall_name: str = "overall",
) -> Summary:
    """Mean score per category; the overall is the unweighted mean of the categories (as BFCL reports).

    Args:
        rows: The rows to summarise.
        categories: Category order (and the categories to include); default: order of first appearance.
        overall_name: Name of the overall number.
    """
    by_cat: dict[str, list[ResultRow]] = defaultdict(list)
    for row in rows:
        by_cat[row.category].append(row)
    order = list(categories) if categories is not None else list(by_cat)
    scores: dict[str, float] = {}
    counts: dict[str, GroupCount] = {}
    reasons: dict[str, dict[str, int]] = {}
    for cat in order:
        group = by_cat.get(cat, [])
        if not group:
            continue
        scores[cat] = sum(row_value(r) for r in group) / len(group)
        counts[cat] = GroupCount(n=len(group), errors=sum(r.status != "ok" for r in group))
        reasons[cat] = dict(Counter(
            str(r.score.get("reason", "error")) if r.status == "ok" else "error" for r in group
        ).most_common())
    overall = sum(scores.values()) / len(scores) if scores else None
    return Summary(scores=scores, counts=counts, overall=overall, overall_name=overall_name, reasons=reasons)


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the written report files."""

    json: Path
    markdown: Path
    chart: Path


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def report_dict(bench: str, outcome: RunOutcome, summary: Summary) -> dict[str, Any]:
    """The content of ``report.json``."""
    errors = [{"id": r.id, "category": r.category, "error": r.error} for r in outcome.rows if r.status != "ok"]
    return {
        "bench": bench,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config_hash": outcome.config_hash,
        "config": outcome.config,
        "records": len(outcome.rows),
        "solved_this_run": outcome.done_now,
        "reused_from_file": outcome.reused,
        "elapsed_s": round(outcome.elapsed_s, 3),
        "overall": {"name": summary.overall_name, "value": summary.overall},
        "scores": summary.scores,
        "scores_percent": {k: round(100 * v, 2) for k, v in summary.scores.items()},
        "counts": {k: asdict(v) for k, v in summary.counts.items()},
        "lower_is_better": summary.lower_is_better,
        "reasons": summary.reasons,
        "notes": summary.notes,
        "errors": errors,
    }


def markdown_table(bench: str, outcome: RunOutcome, summary: Summary) -> str:
    """The content of ``report.md``: a table of the scores with counts, then notes."""
    cfg = outcome.config
    head = ", ".join(f"{k}={cfg[k]}" for k in ("model", "mode", "format") if k in cfg)
    lines = [f"# qwenkit bench {bench}" + (f" ({head})" if head else ""), ""]
    lines += ["| metric | score (%) | records | errors |", "|---|---:|---:|---:|"]
    for name, value in summary.scores.items():
        count = summary.counts.get(name, GroupCount())
        label = f"{name} (lower is better)" if name in summary.lower_is_better else name
        lines.append(f"| {label} | {_pct(value)} | {count.n} | {count.errors} |")
    if summary.overall is not None:
        lines.append(f"| **{summary.overall_name}** | **{_pct(summary.overall)}** | "
                     f"{len(outcome.rows)} | {sum(r.status != 'ok' for r in outcome.rows)} |")
    lines += ["", f"Configuration hash `{outcome.config_hash}`; {len(outcome.rows)} records "
              f"({outcome.done_now} solved in this run, {outcome.reused} reused from results.jsonl)."]
    if summary.notes:
        lines += [""] + [f"- {n}" for n in summary.notes]
    failures = top_failures(summary)
    if failures:
        lines += ["", "## Most frequent failure reasons", "", "| reason | records |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in failures]
    return "\n".join(lines) + "\n"


def top_failures(summary: Summary, limit: int = 10) -> list[tuple[str, int]]:
    """The failure reasons (every verdict reason but ``ok``) over all categories, most frequent first."""
    total: Counter[str] = Counter()
    for reasons in summary.reasons.values():
        for reason, n in reasons.items():
            if reason != "ok":
                total[reason] += n
    return total.most_common(limit)


def bar_chart(path: Path, title: str, summary: Summary) -> None:
    """Write a PNG bar chart of the scores (percent), one bar per metric."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    names = list(summary.scores)
    values = [100 * summary.scores[n] for n in names]
    if summary.overall is not None:
        names.append(summary.overall_name)
        values.append(100 * summary.overall)
    fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 1.5), 4.2), dpi=110)
    ax = fig.add_subplot()
    colors = ["#c44e52" if n in summary.lower_is_better else "#4c72b0" for n in names]
    if summary.overall is not None:
        colors[-1] = "#55a868"
    bars = ax.bar(range(len(names)), values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], padding=2, fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (%)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def write_report(out_dir: str | Path, bench: str, outcome: RunOutcome, summary: Summary) -> ReportFiles:
    """Write ``report.json``, ``report.md`` and ``scores.png`` into ``out_dir``.

    Args:
        out_dir: The run's output folder.
        bench: Benchmark name.
        outcome: What `run_bench` returned.
        summary: The task's `Summary` of ``outcome.rows``.

    Raises:
        OutputUnusable: A file cannot be written.
    """
    out = Path(out_dir)
    files = ReportFiles(out / "report.json", out / "report.md", out / "scores.png")
    cfg = outcome.config
    title = f"qwenkit bench {bench}: " + " / ".join(str(cfg[k]) for k in ("model", "mode", "format") if k in cfg)
    try:
        # errors="replace": error texts quote model output, which may hold unencodable lone surrogates.
        files.json.write_text(json.dumps(report_dict(bench, outcome, summary), indent=2, ensure_ascii=False,
                                         default=str) + "\n", encoding="utf-8", errors="replace")
        files.markdown.write_text(markdown_table(bench, outcome, summary), encoding="utf-8", errors="replace")
        bar_chart(files.chart, title, summary)
    except OSError as exc:
        raise OutputUnusable(f"cannot write the report in {out}: {exc.strerror or exc}.") from exc
    return files
