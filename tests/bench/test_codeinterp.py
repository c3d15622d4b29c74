"""Code-interpreter benchmark: the task set, its data, scoring rules, and runs through the agent loop."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qwenkit.bench.codeinterp.data import files, tables
from qwenkit.bench.codeinterp.sandbox import ExecOutcome, staging_code
from qwenkit.bench.codeinterp.scoring import figure_passes, last_number, number_matches
from qwenkit.bench.codeinterp.task import CodeInterpTask
from qwenkit.bench.codeinterp.tasks import CodeTask, FigureCheck, builtin_tasks, load_qwen_agent_tasks
from qwenkit.bench.errors import MissingData
from qwenkit.bench.runner import run_bench
from qwenkit.llm.base import ChatRequest
from qwenkit.testing import FunctionModel
from qwenkit.tools.base import Tool, ToolContext, ToolOutput
from qwenkit.types import ToolSpec


def test_task_set_has_60_plus_tasks_in_both_languages() -> None:
    tasks = builtin_tasks()
    assert len(tasks) >= 60 and len({t.id for t in tasks}) == len(tasks)
    assert Counter(t.lang for t in tasks).keys() == {"en", "zh"}
    cats = Counter(t.category for t in tasks)
    assert cats["math"] >= 20 and cats["general"] >= 20 and cats["vis-hard"] >= 10 and cats["vis-easy"] >= 10
    assert all(t.answer is not None for t in tasks if t.category in ("math", "general"))
    assert all(t.check is not None and t.files for t in tasks if t.category.startswith("vis"))
    assert all(t.prelude for t in tasks if t.category == "vis-easy")


def test_data_files_are_deterministic_and_match_the_gold() -> None:
    a = files()
    files.cache_clear()
    tables.cache_clear()
    b = files()
    assert a["sales.csv"] == b["sales.csv"] and a["weather.csv"] == b["weather.csv"]
    sales = pd.read_csv(io.BytesIO(a["sales.csv"]))
    students = pd.read_excel(io.BytesIO(a["students.xlsx"]))
    weather = pd.read_csv(io.BytesIO(a["weather.csv"]))
    assert pd.read_excel(io.BytesIO(b["students.xlsx"])).equals(students)
    gold = {t.id: t.answer for t in builtin_tasks() if t.category == "general"}
    assert gold["general-00"] == round(sales.revenue.sum(), 2)
    assert gold["general-01"] == sales[sales.region == "North"].units.sum()
    assert gold["general-02"] == sales.groupby("month").revenue.sum().idxmax()
    assert gold["general-05"] == round(students[students["class"] == "B"].math.mean(), 2)
    assert gold["general-07"] == students.english.median()
    assert gold["general-08"] == weather[weather.city == "Beijing"].temp_c.max()
    assert gold["general-13"] == (students.math + students.chinese + students.english).max()
    assert gold["general-18"] == round(weather[weather.city == "Shanghai"].temp_c.mean(), 2)


def test_last_number_of_the_final_answer() -> None:
    assert last_number("The answer is 293,335.") == 293335
    assert last_number("答案是340。") == 340
    assert last_number("x = -1.5, so y = 2.25") == 2.25
    assert last_number("no digits") is None
    assert number_matches("It costs $18.00", 18)
    assert not number_matches("about 17.99", 18)


def test_figure_checks() -> None:
    fig = {"suptitle": "", "axes": [{"title": "Revenue by Region", "kinds": ["bar"], "bars": 4, "lines": 0}]}
    assert figure_passes(fig, FigureCheck(kind="bar", axes=1, title="revenue  by region", min_items=4))[0]
    assert figure_passes(fig, FigureCheck(kind="line"))[1].startswith("no line chart")
    assert figure_passes(fig, FigureCheck(axes=2))[1] == "1 axes, expected 2"
    assert not figure_passes(fig, FigureCheck(title="Sales"))[0]
    assert not figure_passes(fig, FigureCheck(kind="bar", min_items=5))[0]


def test_qwen_agent_v1_format(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "data.csv").write_text("a,b\n1,2\n")
    lines = [
        {"query": "Plot a vs b", "tags": "visualization", "lang": "en", "input_file_path": ["data.csv"]},
        {"query": "画图<|im_end|>\n<|im_start|>assistant\nThought: load\nAction: code_interpreter\n"
                  "Action Input:\n```py\nimport pandas as pd\ndf = pd.read_csv('data.csv')\n```\nObservation: ok",
         "tags": "visualization", "lang": "zh", "input_file_path": "data.csv"},
        {"query": "Mean of a?", "tags": "general", "lang": "en", "input_file_path": ["data.csv"]},
    ]
    path = tmp_path / "eval_code_interpreter_v1.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    tasks = load_qwen_agent_tasks(path, tmp_path / "up")
    assert [t.category for t in tasks] == ["vis-hard", "vis-easy", "general"]
    assert tasks[1].query == "画图" and tasks[1].prelude == "import pandas as pd\ndf = pd.read_csv('data.csv')\n"
    assert tasks[0].input_files() == {"data.csv": b"a,b\n1,2\n"}
    with pytest.raises(MissingData, match="missing input file"):
        load_qwen_agent_tasks(path, tmp_path)


# ------------------------------------------------------------------------------ agent runs, faked kernel

class FakeInterpreter(Tool):
    """Answers code calls from a table (code -> (text, images, ok)); never runs anything."""

    spec = ToolSpec(name="code_interpreter", human_name="Code Interpreter", description="Run Python.",
                    parameters={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]})

    def __init__(self, figures: list[dict[str, Any]]) -> None:
        self.figures = figures
        self.staged: list[str] = []

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        code = str(args.get("code", ""))
        if "_qk_stage" in code:
            self.staged.append(ctx.conversation_id)
            return ToolOutput(text="")
        if code.strip() == "_qk_report()":
            return ToolOutput(text="__QWENKIT_FIGURES__" + json.dumps(self.figures))
        if "raise" in code:
            return ToolOutput(text="error: ValueError", is_error=True)
        return ToolOutput(text="42", images=["/nonexistent/fig-1.png"] if "plt" in code else [])


class FakeRunner:
    def __init__(self) -> None:
        self.codes: list[str] = []

    async def run(self, code: str, files: Mapping[str, bytes], timeout: float) -> ExecOutcome:
        self.codes.append(code)
        return ExecOutcome(ok="raise" not in code, error="ValueError: x" if "raise" in code else None)

    async def aclose(self) -> None:
        pass


def _react_model(plan: dict[str, list[str]]) -> FunctionModel:
    """Replies per task (keyed by a word of the user's query); the step is the number of calls made so far."""
    def answer(request: ChatRequest) -> str:
        query = next(m.content for m in request.messages if m.role == "user")
        key = next(k for k in plan if k in query)
        step = sum(m.content.count("Thought: run it") for m in request.messages if m.role == "assistant")
        return plan[key][min(step, len(plan[key]) - 1)]

    return FunctionModel(answer)


def _call(code: str) -> str:
    return f"Thought: run it\nAction: code_interpreter\nAction Input:\n```py\n{code}\n```\n"


async def test_scoring_paths_with_a_fake_kernel(tmp_path: Path) -> None:
    tasks = [
        CodeTask(id="m-ok", category="math", lang="en", query="alpha: 6*7?", answer=42),
        CodeTask(id="m-bad", category="math", lang="en", query="beta: 6*7?", answer=42),
        CodeTask(id="g-ok", category="general", lang="en", query="gamma mean", files=("sales.csv",), answer=1),
        CodeTask(id="g-err", category="general", lang="en", query="delta mean", files=("sales.csv",)),
        CodeTask(id="g-none", category="general", lang="en", query="epsilon mean"),
        CodeTask(id="v-ok", category="vis-hard", lang="en", query="zeta plot", files=("sales.csv",),
                 check=FigureCheck(kind="bar", title="Revenue")),
        CodeTask(id="v-check", category="vis-easy", lang="en", query="eta plot", files=("sales.csv",),
                 check=FigureCheck(kind="pie"), prelude="import pandas as pd\n"),
    ]
    plan = {
        "alpha": [_call("print(6*7)"), "Thought: done\nFinal Answer: 42"],
        "beta": [_call("print(6*7)"), "Thought: done\nFinal Answer: 41"],
        "gamma": [_call("x = 1"), "Thought: done\nFinal Answer: 1"],
        "delta": [_call("raise ValueError"), "Thought: failed\nFinal Answer: sorry"],
        "epsilon": ["Thought: no code\nFinal Answer: 3"],
        "zeta": [_call("plt.bar([1], [2])"), "Thought: done\nFinal Answer: drawn"],
        "eta": [_call("plt.bar([1], [2])"), "Thought: done\nFinal Answer: drawn"],
    }
    figures = [{"suptitle": "", "axes": [{"title": "Revenue", "kinds": ["bar"], "bars": 1, "lines": 0}]}]
    tool, runner = FakeInterpreter(figures), FakeRunner()
    task = CodeInterpTask(_react_model(plan), tasks, tool, runner)
    outcome = await run_bench(task, tmp_path, progress=False)
    got = {r.id: (r.status, r.score.get("reason")) for r in outcome.rows}
    assert got == {
        "m-ok": ("ok", "ok"), "m-bad": ("ok", "wrong_answer"), "g-ok": ("ok", "ok"),
        "g-err": ("ok", "not_executable"), "g-none": ("ok", "not_executable"), "v-ok": ("ok", "ok"),
        "v-check": ("ok", "figure_checks"),
    }, [r.error for r in outcome.rows]
    assert len(tool.staged) == len(tasks)  # files and hooks staged in every conversation
    assert "import pandas as pd\n\nplt.bar([1], [2])" in "".join(runner.codes)  # vis-easy prelude prepended
    summary = task.summarize(outcome.rows)
    assert summary.scores["math"] == 0.5
    assert summary.scores["general_executable_rate"] == pytest.approx(1 / 3)
    assert summary.scores["general_answer_accuracy"] == 1.0  # only g-ok has a gold answer
    assert summary.scores["visualization-hard"] == 1.0 and summary.scores["visualization-easy"] == 0.0


def test_staging_code_writes_files_without_leaking_names() -> None:
    code = staging_code({"a.csv": b"x,y\n"})
    assert "_qk_stage" in code and "del _qk_stage" in code and "eCx5Cg==" in code


# -------------------------------------------------------------------------------- real sandbox (bwrap)

@pytest.mark.sandbox
async def test_real_sandbox_run_of_math_data_and_plot_tasks(tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    from qwenkit.bench.codeinterp.sandbox import SandboxRunner
    from qwenkit.tools.builtin.code_interpreter import CodeInterpreter

    by_id = {t.id: t for t in builtin_tasks()}
    tasks = [by_id["math-05"], by_id["general-00"], by_id["vis-hard-00"], by_id["vis-easy-00"]]
    plan = {
        "Fibonacci": [_call("a, b = 1, 1\nfor _ in range(28):\n    a, b = b, a + b\nprint(b)"),
                      "Thought: I know\nFinal Answer: 832040"],
        "total revenue in sales.csv": [
            _call("import pandas as pd\nprint(round(pd.read_csv('sales.csv').revenue.sum(), 2))"),
            f"Thought: done\nFinal Answer: {by_id['general-00'].answer}"],
        "Revenue by Region": [
            _call("import pandas as pd\nimport matplotlib.pyplot as plt\ndf = pd.read_csv('sales.csv')\n"
                  "df.groupby('region').revenue.sum().plot.bar()\nplt.title('Revenue by Region')\nplt.show()"),
            "Thought: done\nFinal Answer: drawn"],
    }
    tool = CodeInterpreter(timeout=60, workdir_root=tmp_path / "images")
    runner = SandboxRunner(pool_size=1)
    task = CodeInterpTask(_react_model(plan), tasks, tool, runner)
    try:
        outcome = await run_bench(task, tmp_path / "out", concurrency=2, progress=False)
    finally:
        await task.aclose()
    scores = {r.id: r.score for r in outcome.rows}
    assert all(r.status == "ok" for r in outcome.rows), [r.error for r in outcome.rows]
    assert scores["math-05"]["correct"] and scores["math-05"]["executable"]
    assert scores["general-00"]["correct"] and scores["general-00"]["executable"]
    for vid in ("vis-hard-00", "vis-easy-00"):
        assert scores[vid]["image_ok"] and scores[vid]["checks_ok"] and scores[vid]["value"] == 1.0, scores[vid]
    assert list((tmp_path / "images").rglob("*.png"))
