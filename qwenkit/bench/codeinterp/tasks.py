"""The code-interpreter task set: built-in tasks (English and Chinese), and Qwen-Agent's v1 file format.

Categories, as in Qwen-Agent's benchmark:

- ``math``: word problems with an exact numeric answer (the last number of the final answer is compared);
- ``general``: data-analysis questions over the generated CSV/Excel files (executable rate of the first
  code block, and the numeric answer);
- ``vis-hard``: plotting from scratch; ``vis-easy``: plotting after a first step (loading the data) that
  is already in the conversation, executed.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from qwenkit.bench.codeinterp.data import files, tables
from qwenkit.bench.datafile import first_problem, parse_jsonl, read_data_file, short
from qwenkit.bench.errors import BadData

Category = Literal["math", "general", "vis-hard", "vis-easy"]
CATEGORIES: tuple[Category, ...] = ("math", "vis-hard", "vis-easy", "general")


@dataclass(frozen=True)
class FigureCheck:
    """What a produced figure must show (checks left ``None`` are skipped).

    Attributes:
        kind: A chart kind some axes must have: ``bar``, ``line``, ``pie``, ``scatter``.
        axes: Exact number of axes (subplots) of the figure.
        title: Text the title (an axes title or the figure's suptitle) must contain (case-insensitive).
        min_items: Least number of bars (for ``bar``) or lines (for ``line``) on the axes with ``kind``.
    """

    kind: str | None = None
    axes: int | None = None
    title: str | None = None
    min_items: int | None = None


@dataclass(frozen=True)
class CodeTask:
    """One task.

    Attributes:
        id: Unique id.
        category: See the module docstring.
        lang: ``en`` or ``zh``.
        query: The user's question.
        files: Input files staged in the working directory before the run.
        answer: Gold number (math and general), if any.
        check: Figure checks (visualization), if any.
        prelude: Code of the first step, already executed (vis-easy).
    """

    id: str
    category: Category
    lang: str
    query: str
    files: tuple[str, ...] = ()
    answer: float | None = None
    check: FigureCheck | None = None
    prelude: str | None = None
    file_bytes: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def input_files(self) -> dict[str, bytes]:
        """The bytes of the task's input files."""
        if self.file_bytes:
            return dict(self.file_bytes)
        generated = files()
        return {name: generated[name] for name in self.files}


# --------------------------------------------------------------------------------------------- math

_MATH: list[tuple[str, str, float]] = [
    ("en", "A shop sells pencils at 3 for $1.20. How many dollars do 45 pencils cost?", 18),
    ("en", "A train travels 372 km in 4 hours at constant speed. How many km does it travel in 7 hours?", 651),
    ("en", "What is the sum of all integers from 1 to 2024 that are divisible by 7?", 7 * (289 * 290) // 2),
    ("en", "A rectangle has a perimeter of 58 cm and a length of 17 cm. What is its area in square cm?", 17 * 12),
    ("en", "How many prime numbers are there below 500?", 95),
    ("en", "Compute the 30th Fibonacci number, with F(1) = F(2) = 1.", 832040),
    ("en", "An investment of 5000 dollars earns 4% interest compounded yearly. What is it worth after 10 "
           "years, rounded to 2 decimal places?", round(5000 * 1.04**10, 2)),
    ("en", "What is the least common multiple of 84, 126 and 210?", 1260),
    ("en", "A tank is filled by pipe A in 6 hours and by pipe B in 9 hours. How many hours do both pipes "
           "together take, rounded to 2 decimal places?", round(1 / (1 / 6 + 1 / 9), 2)),
    ("en", "How many ways can a committee of 4 be chosen from 12 people?", 495),
    ("en", "Solve for x: 3x + 17 = 5x - 29.", 23),
    ("en", "What is the remainder when 7^2024 is divided by 13?", pow(7, 2024, 13)),
    ("zh", "小明有 48 颗糖，分给同学后剩下的是原来的 3/8。他分出去了多少颗糖？", 30),
    ("zh", "一个数的 35% 是 119，这个数是多少？", 340),
    ("zh", "1 到 1000 中各位数字之和等于 10 的整数有多少个？",
     sum(1 for n in range(1, 1001) if sum(map(int, str(n))) == 10)),
    ("zh", "一辆汽车每百公里耗油 7.5 升，油价每升 8 元。行驶 360 公里需要多少元油费？", 216),
    ("zh", "求 100 以内（含 100）所有奇数的平方和。", sum(k * k for k in range(1, 101, 2))),
    ("zh", "一个等差数列首项为 5，公差为 3，求前 40 项的和。", 40 * 5 + 3 * 40 * 39 // 2),
    ("zh", "鸡兔同笼，共有 35 个头，94 只脚。兔子有多少只？", 12),
    ("zh", "一件商品先涨价 20%，再降价 20%，现价 480 元。原价是多少元？", 500),
    ("zh", "求 2 的 64 次方除以 1000 的余数。", pow(2, 64, 1000)),
    ("zh", "圆的半径为 7 厘米，求它的面积（取 π 的精确值，结果保留两位小数）。", round(3.141592653589793 * 49, 2)),
    ("zh", "甲乙两地相距 450 千米，两车同时相向而行，速度分别为每小时 70 千米和 80 千米。几小时后相遇？", 3),
    ("zh", "求 123456789 的各位数字之积。", 362880),
]


def _math_tasks() -> list[CodeTask]:
    hint = {"en": " Use the code interpreter to compute it and give the final number.",
            "zh": "请使用代码解释器计算，并给出最终数值。"}
    return [CodeTask(id=f"math-{i:02d}", category="math", lang=lang, query=q + hint[lang], answer=float(a))
            for i, (lang, q, a) in enumerate(_MATH)]


# ------------------------------------------------------------------------------------- data (general)

def _data_questions() -> list[tuple[str, str, str, float]]:
    t = tables()
    sales, students, weather = t.sales, t.students, t.weather
    by_region: dict[str, int] = defaultdict(int)
    rev_month: dict[int, float] = defaultdict(float)
    for r in sales:
        by_region[r["region"]] += r["units"]
        rev_month[r["month"]] += r["revenue"]
    best_month = max(rev_month, key=lambda m: rev_month[m])
    b_math = [s["math"] for s in students if s["class"] == "B"]
    bj = [w for w in weather if w["city"] == "Beijing"]
    sh = [w for w in weather if w["city"] == "Shanghai"]
    total = [s["math"] + s["chinese"] + s["english"] for s in students]
    genders = Counter(s["gender"] for s in students)
    return [
        ("en", "sales.csv", "What is the total revenue in sales.csv, rounded to 2 decimal places?",
         round(sum(r["revenue"] for r in sales), 2)),
        ("en", "sales.csv", "How many units were sold in the North region in total (sales.csv)?", by_region["North"]),
        ("en", "sales.csv", "In sales.csv, which month number (1-12) has the highest total revenue?", best_month),
        ("en", "sales.csv", "What is the average number of units per row for product C in sales.csv, rounded to "
                            "2 decimal places?",
         round(statistics.mean(r["units"] for r in sales if r["product"] == "C"), 2)),
        ("en", "sales.csv", "How many rows of sales.csv have more than 50 units?", sum(r["units"] > 50 for r in sales)),
        ("en", "students.xlsx", "What is the average math score of class B in students.xlsx, rounded to 2 decimal "
                                "places?", round(statistics.mean(b_math), 2)),
        ("en", "students.xlsx", "How many students in students.xlsx scored at least 90 in math?",
         sum(s["math"] >= 90 for s in students)),
        ("en", "students.xlsx", "What is the median English score in students.xlsx?",
         float(statistics.median(s["english"] for s in students))),
        ("en", "weather.csv", "What is the highest temperature recorded in Beijing in weather.csv?",
         max(w["temp_c"] for w in bj)),
        ("en", "weather.csv", "What is the total rainfall in mm in Shanghai in weather.csv, rounded to 1 decimal "
                              "place?", round(sum(w["rain_mm"] for w in sh), 1)),
        ("zh", "sales.csv", "sales.csv 中 West 地区的总销售额是多少？保留两位小数。",
         round(sum(r["revenue"] for r in sales if r["region"] == "West"), 2)),
        ("zh", "sales.csv", "sales.csv 中产品 A 一共卖出了多少件？",
         sum(r["units"] for r in sales if r["product"] == "A")),
        ("zh", "sales.csv", "sales.csv 中第 6 个月的总销量（units）是多少？",
         sum(r["units"] for r in sales if r["month"] == 6)),
        ("zh", "students.xlsx", "students.xlsx 中三门课总分最高的学生总分是多少？", max(total)),
        ("zh", "students.xlsx", "students.xlsx 中女生（gender 为 F）有多少人？", genders["F"]),
        ("zh", "students.xlsx", "students.xlsx 中语文成绩的平均分是多少？保留两位小数。",
         round(statistics.mean(s["chinese"] for s in students), 2)),
        ("zh", "students.xlsx", "students.xlsx 中数学不及格（低于 60 分）的学生有多少人？",
         sum(s["math"] < 60 for s in students)),
        ("zh", "weather.csv", "weather.csv 中北京（Beijing）有多少天降雨量大于 0？",
         sum(w["rain_mm"] > 0 for w in bj)),
        ("zh", "weather.csv", "weather.csv 中上海（Shanghai）的平均气温是多少？保留两位小数。",
         round(statistics.mean(w["temp_c"] for w in sh), 2)),
        ("zh", "weather.csv", "weather.csv 中北京的最低气温是多少？", min(w["temp_c"] for w in bj)),
    ]


def _general_tasks() -> list[CodeTask]:
    return [CodeTask(id=f"general-{i:02d}", category="general", lang=lang, query=q, files=(f,), answer=float(a))
            for i, (lang, f, q, a) in enumerate(_data_questions())]


# ------------------------------------------------------------------------------------- visualization

_VIS: list[tuple[str, str, str, FigureCheck]] = [
    ("en", "sales.csv", "Draw a bar chart of the total revenue of each region in sales.csv, titled "
                        "'Revenue by Region'.",
     FigureCheck(kind="bar", axes=1, title="Revenue by Region", min_items=4)),
    ("en", "sales.csv", "Plot the total revenue per month from sales.csv as a line chart titled 'Monthly Revenue'.",
     FigureCheck(kind="line", axes=1, title="Monthly Revenue")),
    ("en", "sales.csv", "Make a pie chart of the units sold per product in sales.csv, titled 'Units by Product'.",
     FigureCheck(kind="pie", axes=1, title="Units by Product")),
    ("en", "students.xlsx", "Draw a scatter plot of math against English scores from students.xlsx, titled "
                            "'Math vs English'.", FigureCheck(kind="scatter", axes=1, title="Math vs English")),
    ("en", "students.xlsx", "Plot a histogram of the math scores in students.xlsx with 10 bins, titled "
                            "'Math Scores'.", FigureCheck(kind="bar", axes=1, title="Math Scores", min_items=10)),
    ("en", "weather.csv", "Using weather.csv, draw a figure with two subplots side by side: the daily temperature "
                          "of Beijing on the left and of Shanghai on the right.", FigureCheck(kind="line", axes=2)),
    ("zh", "sales.csv", "用 sales.csv 画出各产品总销售额的柱状图，标题为“产品销售额”。",
     FigureCheck(kind="bar", axes=1, title="产品销售额", min_items=3)),
    ("zh", "weather.csv", "用 weather.csv 画出北京和上海每日气温的折线图（两条线画在同一张图上），标题为“气温对比”。",
     FigureCheck(kind="line", axes=1, title="气温对比", min_items=2)),
    ("zh", "students.xlsx", "用 students.xlsx 画出三个班级数学平均分的柱状图，标题为“班级数学平均分”。",
     FigureCheck(kind="bar", axes=1, title="班级数学平均分", min_items=3)),
    ("zh", "students.xlsx", "用 students.xlsx 画出男女生人数的饼图，标题为“性别比例”。",
     FigureCheck(kind="pie", axes=1, title="性别比例")),
]

_LOAD = {
    "sales.csv": "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint(df.head())\n",
    "weather.csv": "import pandas as pd\ndf = pd.read_csv('weather.csv')\nprint(df.head())\n",
    "students.xlsx": "import pandas as pd\ndf = pd.read_excel('students.xlsx')\nprint(df.head())\n",
}


def _vis_tasks() -> list[CodeTask]:
    out = []
    for i, (lang, f, q, check) in enumerate(_VIS):
        out.append(CodeTask(id=f"vis-hard-{i:02d}", category="vis-hard", lang=lang, query=q, files=(f,), check=check))
        out.append(CodeTask(id=f"vis-easy-{i:02d}", category="vis-easy", lang=lang, query=q, files=(f,), check=check,
                            prelude=_LOAD[f]))
    return out


def builtin_tasks() -> list[CodeTask]:
    """The built-in task set (64 tasks, English and Chinese)."""
    return _math_tasks() + _vis_tasks() + _general_tasks()


# ----------------------------------------------------------------------------------- Qwen-Agent v1

def _first_action_code(text: str) -> str:
    """Code of the first ``Action Input:`` in a conversation written into a query (fence removed)."""
    start = text.find("Action Input:")
    if start < 0:
        return ""
    body = text[start + len("Action Input:"):]
    end = body.find("Observation:")
    body = body[:end] if end >= 0 else body
    if "```" in body:
        parts = body.split("```")
        if len(parts) >= 2:
            code = parts[1]
            first_line, _, rest = code.partition("\n")
            return rest if first_line.strip().lower() in ("py", "python", "") else code
    return body.strip()


class _QwenAgentLine(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    query: str
    tags: str | list[str] = ""
    lang: str = "en"
    input_file_path: str | list[str] | None = None


def _input_file(files_dir: Path, name: str, source: str) -> tuple[str, bytes]:
    """One input file named by a task line: inside ``files_dir`` only (the task file is untrusted)."""
    rel = Path(name)
    if not name or rel.is_absolute() or ".." in rel.parts:
        raise BadData(f"{source} names the input file {short(name)!r}, which is not a path inside the files folder.")
    return rel.name, read_data_file(files_dir / rel, "input file")


def load_qwen_agent_tasks(path: str | Path, files_dir: str | Path | None) -> list[CodeTask]:
    """Read Qwen-Agent's ``eval_code_interpreter_v1.jsonl`` (``query``, ``tags``, ``lang``, ``input_file_path``).

    A ``visualization`` query holding a first turn (``<|im_end|>``) is vis-easy, its first action's code is
    the prelude; other visualization queries are vis-hard; ``general`` is general; ``math`` has no gold here
    (only its executable rate is measured). Input files are looked up relative to ``files_dir`` (default: the
    current folder) and must lie inside it.

    Raises:
        MissingData: The file or an input file is missing.
        BadData: A line is malformed, or the file has no tasks.
    """
    p = Path(path)
    tasks = []
    for n, obj in parse_jsonl(read_data_file(p, "task file"), str(p)):
        try:
            item = _QwenAgentLine.model_validate(obj)
        except ValidationError as exc:
            raise BadData(f"{p} line {n} is not a Qwen-Agent eval_code_interpreter_v1 task "
                          f"({first_problem(exc)}).") from exc
        query = item.query
        tags = item.tags.split(",") if isinstance(item.tags, str) else item.tags
        names = item.input_file_path or []
        names = [names] if isinstance(names, str) else list(names)
        data = dict(_input_file(Path(files_dir or "."), name, f"{p} line {n}") for name in names)
        prelude = None
        if "visualization" in tags:
            category: Category = "vis-hard"
            if "<|im_end|>" in query:
                category, prelude = "vis-easy", _first_action_code(query.split("<|im_end|>", 1)[1]) or None
                query = query.split("<|im_end|>", 1)[0]
        elif "math" in tags:
            category = "math"
        else:
            category = "general"
        tasks.append(CodeTask(id=f"v1-{n:04d}", category=category, lang=item.lang,
                              query=query.strip(), files=tuple(data), prelude=prelude, file_bytes=data))
    if not tasks:
        raise BadData(f"task file {p} has no tasks.")
    return tasks
