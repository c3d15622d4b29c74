"""Bad data files, output folders and flags: one ``qwenkit: error:`` line with exit code 2, never a traceback.

Each case writes the bad file itself and runs the real command line (in-process through `qwenkit.cli.main`;
one case in a subprocess, to see exactly what a user sees).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenkit.bench.bfcl.data import CATEGORIES, load_category, parse_category
from qwenkit.bench.codeinterp.tasks import load_qwen_agent_tasks
from qwenkit.bench.errors import BadData, OutputUnusable, ResultsFileError
from qwenkit.bench.perf_runner import StubServerProcess
from qwenkit.bench.results import RESULTS_FILE, parse_results, read_results
from qwenkit.bench.runner import run_bench
from qwenkit.bench.tooluse.data import load_qwen_file
from tests.bench.bench_helpers import CountingTask
from tests.bench.test_bench_cli import run_cli

REPO = Path(__file__).resolve().parents[2]
QUESTION = {"id": "simple_python_0", "question": [[{"role": "user", "content": "Area of a 10 by 5 triangle?"}]],
            "function": [{"name": "area", "description": "Triangle area.", "parameters": {
                "type": "dict", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
                "required": ["base", "height"]}}]}
ANSWER = {"id": "simple_python_0", "ground_truth": [{"area": {"base": [10], "height": [5]}}]}


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    with StubServerProcess(0.0) as server:
        yield server.base_url


def _data_dir(root: Path, questions: bytes, answers: bytes) -> Path:
    """A BFCL data folder whose simple_python files hold the given bytes."""
    (root / "possible_answer").mkdir(parents=True)
    (root / "BFCL_v4_simple_python.json").write_bytes(questions)
    (root / "possible_answer" / "BFCL_v4_simple_python.json").write_bytes(answers)
    return root


def _line(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


# ---------------------------------------------------------------------------------- BFCL data files

BAD_QUESTIONS = [
    pytest.param(_line({"id": "simple_python_0", "question": "not a list", "function": []}),
                 r"line 1 is not a BFCL question \(question: Input should be a valid list\)", id="wrong-shape"),
    pytest.param(_line({k: v for k, v in QUESTION.items() if k != "id"}),
                 r"line 1 is not a BFCL question \(id: Field required\)", id="no-id"),
    pytest.param(_line(QUESTION) + _line([QUESTION]), r"line 2 is a JSON array, not an object", id="array"),
    pytest.param(_line(QUESTION)[:-1] + b" \xff\xfe\n", r"line 1 is not UTF-8 text \(byte \d+\)", id="not-utf8"),
    pytest.param(b'{"id": "simple_python_0", "question": [[\n', r"line 1 is not JSON", id="not-json"),
    pytest.param(_line({**QUESTION, "id": 7}), r"id: Input should be a valid string", id="numeric-id"),
    pytest.param(_line(QUESTION) * 2, r"two questions with id 'simple_python_0'", id="duplicate-id"),
    pytest.param(_line({**QUESTION, "question": [[]]}), r"question\.0: List should have at least 1 item",
                 id="empty-turn"),
    pytest.param(b"[" * 100_000 + b"\n", r"line 1 is nested too deeply", id="deep"),
]


@pytest.mark.parametrize(("questions", "message"), BAD_QUESTIONS)
def test_a_bad_bfcl_question_file_is_one_line(tmp_path: Path, stub: str, questions: bytes, message: str) -> None:
    data = _data_dir(tmp_path / "data", questions, _line(ANSWER))
    code, msg = run_cli(["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(data),
                         "--categories", "simple_python", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert str(data / "BFCL_v4_simple_python.json") in msg
    assert re.search(message, msg), msg
    assert not (tmp_path / "out").exists()  # refused before any request or output


@pytest.mark.parametrize(("answers", "message"), [
    pytest.param(_line({"id": "simple_python_0"}), r"line 1 is not a BFCL answer \(ground_truth: Field required\)",
                 id="no-ground-truth"),
    pytest.param(_line({"id": "simple_python_0", "ground_truth": {"area": {}}}),
                 r"ground_truth: Input should be a valid list", id="ground-truth-not-a-list"),
    pytest.param(_line({"id": "other", "ground_truth": [{"area": {"base": [1]}}]}),
                 r"question 'simple_python_0' has no possible answer", id="no-answer-for-question"),
])
def test_a_bad_bfcl_answer_file_is_one_line(tmp_path: Path, stub: str, answers: bytes, message: str) -> None:
    data = _data_dir(tmp_path / "data", _line(QUESTION), answers)
    code, msg = run_cli(["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(data),
                         "--categories", "simple_python", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2 and re.search(message, msg), msg


def test_the_good_record_of_the_bad_file_cases_loads(tmp_path: Path) -> None:
    """The cases above fail for their flaw alone: the same record without it is read."""
    items = load_category(_data_dir(tmp_path, _line(QUESTION), _line(ANSWER)), "simple_python")
    assert [(i.id, i.ground_truth) for i in items] == [("simple_python_0", ANSWER["ground_truth"])]


def test_lone_surrogates_in_a_data_file_are_replaced() -> None:
    """A ``\\ud800`` escape is valid JSON but cannot be sent to a server: it becomes U+FFFD."""
    question = json.dumps({**QUESTION, "question": [[{"role": "user", "content": "a\ud800b"}]]}).encode()
    [item] = parse_category("simple_python", question, _line(ANSWER))
    assert item.messages[0]["content"] == "a\ufffdb"


def test_keys_quoted_in_an_error_stay_on_one_line() -> None:
    """Found by the fuzz test: a key holding a line break, quoted as it was, split the message."""
    question = {**QUESTION, "function": [{"name": "f", "parameters": {"properties": {"a\nb" * 50: None}}}]}
    with pytest.raises(BadData) as caught:
        parse_category("simple_python", _line(question), _line(ANSWER))
    message = str(caught.value)
    assert "\n" not in message and "properties.a\\nba\\nb" in message and "..." in message
    assert len(message) < 300


def test_a_bad_bfcl_file_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    data = _data_dir(tmp_path / "data", _line([1, 2, 3]), _line(ANSWER))
    proc = subprocess.run(
        [sys.executable, "-m", "qwenkit", "bench", "bfcl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
         "--data-dir", str(data), "--categories", "simple_python", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"qwenkit: error: {data / 'BFCL_v4_simple_python.json'} line 1 is a JSON array, not an object."]
    assert proc.stdout == ""


# ------------------------------------------------------------------------ other benchmarks' files

def test_bad_tool_use_files(tmp_path: Path) -> None:
    path = tmp_path / "positive.jsonl"
    for content, message in [
        (b'{"prompt": "hi"}\n\xc3(\n', r"line 2 is not UTF-8"),
        (b'["prompt"]\n', r"line 1 is a JSON array"),
        (b'{"prompt": 5}\n', r'line 1 is not a \{"prompt", "response"\} object \(prompt: Input should be a valid str'),
        (b"\n \n", r"has no samples"),
    ]:
        path.write_bytes(content)
        with pytest.raises(BadData, match=message):
            load_qwen_file(path, "positive")


def test_bad_code_interpreter_task_files(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    (tmp_path / "files").mkdir()
    (tmp_path / "secret.txt").write_text("host file")
    for content, message in [
        (b'{"query": "q"}\n\xff\n', r"line 2 is not UTF-8"),
        (b'"just a string"\n', r"line 1 is a JSON string, not an object"),
        (b'{"query": ["q"]}\n', r"line 1 is not a Qwen-Agent eval_code_interpreter_v1 task \(query: "),
        (b'{"query": "q", "input_file_path": 3}\n', r"input_file_path"),
        # The task file is untrusted: it must not stage host files from outside the files folder.
        (b'{"query": "q", "input_file_path": "../secret.txt"}\n', r"not a path inside the files folder"),
        (_line({"query": "q", "input_file_path": str(tmp_path / "secret.txt")}), r"not a path inside"),
    ]:
        path.write_bytes(content)
        with pytest.raises(BadData, match=message):
            load_qwen_agent_tasks(path, tmp_path / "files")


def test_codeinterp_cli_reports_a_bad_task_file_in_one_line(tmp_path: Path, stub: str) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"[]\n")
    code, msg = run_cli(["bench", "codeinterp", "--base-url", stub, "--model", "stub", "--tasks", str(path),
                         "--out", str(tmp_path / "out")])
    assert code == 2 and msg == f"{path} line 1 is a JSON array, not an object."
    code, msg = run_cli(["bench", "codeinterp", "--base-url", stub, "--model", "stub", "--tasks",
                         str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")])
    assert code == 2 and msg.startswith(f"missing task file {tmp_path / 'missing.jsonl'}.") and "--tasks" in msg


# ----------------------------------------------------------------------------------- output folder

def _bfcl_argv(data: Path, out: Path, stub: str) -> list[str]:
    return ["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(data), "--categories",
            "simple_python", "--out", str(out), "--no-progress", "--limit", "1"]


def test_out_that_is_a_file_or_under_a_file(tmp_path: Path, stub: str) -> None:
    data = _data_dir(tmp_path / "data", _line(QUESTION), _line(ANSWER))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    code, msg = run_cli(_bfcl_argv(data, a_file, stub))
    assert (code, msg) == (2, f"the output folder {a_file} is a file, not a folder. Choose another --out.")
    code, msg = run_cli(_bfcl_argv(data, a_file / "sub", stub))
    assert code == 2 and msg.startswith(f"cannot create the output folder {a_file / 'sub'}: Not a directory")
    out = tmp_path / "out"
    (out / RESULTS_FILE).mkdir(parents=True)
    code, msg = run_cli(_bfcl_argv(data, out, stub))
    assert (code, msg) == (2, f"{out / RESULTS_FILE} exists and is not a file. Choose another --out.")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_out_that_is_not_writable(tmp_path: Path, stub: str) -> None:
    data = _data_dir(tmp_path / "data", _line(QUESTION), _line(ANSWER))
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        code, msg = run_cli(_bfcl_argv(data, out, stub))
        assert (code, msg) == (2, f"the output folder {out} is not writable. Choose another --out.")
        code, msg = run_cli(_bfcl_argv(data, out / "sub", stub))
        assert code == 2 and "Permission denied" in msg
    finally:
        out.chmod(0o700)


async def test_run_bench_refuses_an_unusable_folder_itself(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputUnusable, match="is a file, not a folder"):
        await run_bench(CountingTask(1), tmp_path / "f", progress=False)


# ------------------------------------------------------------------------------------------- flags

@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--timeout", "0", "argument --timeout: must be more than 0, got '0'"),
    ("--timeout", "-1", "argument --timeout: must be more than 0, got '-1'"),
    ("--timeout", "nan", "argument --timeout: expected a finite number, got 'nan'"),
    ("--limit", "-1", "argument --limit: must be at least 1, got '-1'"),
    ("--limit", "0", "argument --limit: must be at least 1, got '0'"),
    ("--concurrency", "0", "argument --concurrency: must be at least 1, got '0'"),
    ("--max-tokens", "-5", "argument --max-tokens: must be at least 1, got '-5'"),
    ("--temperature", "inf", "argument --temperature: expected a finite number, got 'inf'"),
    ("--request-timeout", "0", "argument --request-timeout: must be more than 0, got '0'"),
])
def test_nonsense_numbers_are_refused(bfcl_dir: Path, tmp_path: Path, flag: str, value: str, message: str) -> None:
    code, msg = run_cli(["bench", "bfcl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--data-dir",
                         str(bfcl_dir), "--out", str(tmp_path / "out"), f"{flag}={value}"])
    assert code == 2 and msg.startswith(message), msg
    assert not (tmp_path / "out").exists()


def test_exec_timeout_is_checked_too(tmp_path: Path) -> None:
    code, msg = run_cli(["bench", "codeinterp", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                         "--exec-timeout", "0"])
    assert code == 2 and msg.startswith("argument --exec-timeout: must be more than 0")


async def test_run_bench_refuses_a_timeout_that_is_not_positive(tmp_path: Path) -> None:
    from qwenkit.errors import ConfigError

    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="timeout must be a positive number"):
            await run_bench(CountingTask(1), tmp_path, timeout=bad, progress=False)


# ------------------------------------------------------------------------------------- fetch --wheel

def test_fetch_with_a_missing_or_garbage_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    code, msg = run_cli(["bench", "fetch", "bfcl", "--wheel", str(tmp_path / "nope.whl"), "--dest", str(dest)])
    assert (code, msg) == (2, f"the wheel {tmp_path / 'nope.whl'} does not exist. Check --wheel.")
    garbage = tmp_path / "garbage.whl"
    garbage.write_bytes(os.urandom(4096))
    code, msg = run_cli(["bench", "fetch", "bfcl", "--wheel", str(garbage), "--dest", str(dest)])
    assert code == 2 and msg.startswith(f"{garbage} is not a readable wheel (zip) file")
    code, msg = run_cli(["bench", "fetch", "bfcl", "--wheel", str(tmp_path), "--dest", str(dest)])
    assert (code, msg) == (2, f"{tmp_path} is not a file. Check --wheel.")
    assert "PyPI" not in capsys.readouterr().out  # nothing is downloaded, so nothing is announced
    assert not dest.exists()


def test_fetch_refuses_a_wheel_whose_member_is_corrupt(bfcl_dir: Path, tmp_path: Path) -> None:
    wheel = tmp_path / "bfcl_eval.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for c in CATEGORIES:
            z.write(bfcl_dir / f"BFCL_v4_{c}.json", f"bfcl_eval/data/BFCL_v4_{c}.json")
            if c != "irrelevance":
                z.write(bfcl_dir / "possible_answer" / f"BFCL_v4_{c}.json",
                        f"bfcl_eval/data/possible_answer/BFCL_v4_{c}.json")
    raw = bytearray(wheel.read_bytes())
    raw[200:260] = bytes(60)  # inside the first member's compressed data
    wheel.write_bytes(bytes(raw))
    code, msg = run_cli(["bench", "fetch", "bfcl", "--wheel", str(wheel), "--dest", str(tmp_path / "dest")])
    assert code == 2 and msg.startswith(f"{wheel} is not a readable wheel (zip) file"), msg
    assert not (tmp_path / "dest").exists()


# ------------------------------------------------------------------------------------------- resume

async def test_resume_after_a_last_line_cut_inside_a_utf8_character(tmp_path: Path) -> None:
    await run_bench(CountingTask(4), tmp_path, progress=False)
    path = tmp_path / RESULTS_FILE
    cut = '{"type": "result", "id": "r3", "category": "odd", "status": "error", "error": "é'.encode()[:-1]
    with path.open("ab") as f:
        f.write(cut)  # half of the two bytes of "é"
    header, rows = read_results(path)
    assert header is not None and set(rows) == {"r0", "r1", "r2", "r3"}
    retry = CountingTask(4)
    outcome = await run_bench(retry, tmp_path, resume=True, progress=False)
    assert retry.solved == [] and outcome.reused == 4
    assert path.read_bytes().endswith(b"}\n")
    assert all(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())


async def test_a_corrupt_last_line_with_a_newline_does_not_poison_the_next_resume(tmp_path: Path) -> None:
    await run_bench(CountingTask(4, fail={"r1"}), tmp_path, progress=False)
    path = tmp_path / RESULTS_FILE
    with path.open("a", encoding="utf-8") as f:
        f.write('{"type": "result", "id": "r1", "categ\n')  # a crash mid-line, then a newline
    again = CountingTask(4)
    await run_bench(again, tmp_path, resume=True, retry_errors=True, progress=False)
    assert again.solved == ["r1"]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and all(isinstance(json.loads(line), dict) for line in lines)
    finished = CountingTask(4)
    outcome = await run_bench(finished, tmp_path, resume=True, progress=False)  # a second resume reads it all
    assert finished.solved == [] and all(r.status == "ok" for r in outcome.rows)


def test_an_edited_results_file_is_one_line_naming_the_fix(bfcl_dir: Path, tmp_path: Path, stub: str) -> None:
    argv = ["bench", "bfcl", "--base-url", stub, "--model", "stub", "--data-dir", str(bfcl_dir), "--categories",
            "simple_python", "--limit", "2", "--out", str(tmp_path), "--no-progress"]
    assert run_cli(argv)[0] == 0
    path = tmp_path / RESULTS_FILE
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(lines[0] + "not json\n" + "".join(lines[1:]), encoding="utf-8")
    code, msg = run_cli([*argv, "--resume"])
    assert (code, msg) == (2, f"{path} line 2 is not a results record; it is not a qwenkit results file, or "
                              "it was edited. Move it away, choose another --out, or pass --overwrite.")
    assert run_cli([*argv, "--overwrite"])[0] == 0


@pytest.mark.parametrize(("content", "message"), [
    (b'{"type": "result", "id": "r0", "category": "even", "status": "ok"}\n{"a": 1}\n',
     "does not start with a header line"),
    (b'{"type": "header", "format_version": 1, "config_hash": "x", "config": {}}\n'
     b'{"type": "header", "format_version": 1, "config_hash": "x", "config": {}}\n{}\n', "line 2 is a second header"),
    (b'{"type": "header", "format_version": 99, "config_hash": "x", "config": {}}\n', "results format 99"),
    (b'{"type": "header", "format_version": 1, "config_hash": "x", "config": {}}\n'
     b'{"type": "result", "id": 3, "category": "even", "status": "ok"}\n{}\n', "line 2 is not a results record"),
])
def test_results_files_that_are_not_ours(content: bytes, message: str) -> None:
    with pytest.raises(ResultsFileError, match=message):
        parse_results(content, "results.jsonl")


def test_a_results_file_with_only_a_cut_line_is_empty() -> None:
    assert parse_results(b'{"type": "hea', "r") == (None, {})
    assert parse_results(b"", "r") == (None, {})

