"""The `qwenkit` command in a real subprocess against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.llm.stub_server import Reply, ThreadedStub, chat_body


def qwenkit(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "qwenkit.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=60, env=full_env)


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def test_run_streams_a_tool_call_and_the_answer() -> None:
    replies = [Reply(body=chat_body(call("calculator", expression="factorial(5)+1"))),
               Reply(body=chat_body("The answer is 121."))]
    with ThreadedStub(replies) as srv:
        p = qwenkit("run", "What is 5!+1?", "--base-url", srv.base_url, "--model", "qwen", "--format", "nous",
                    "--tool", "calculator")
    assert p.returncode == 0, p.stderr
    assert "calculator" in p.stdout and "121" in p.stdout and "The answer is 121." in p.stdout
    assert "<tool_response>\n121\n</tool_response>" in srv.requests[1]["messages"][-1]["content"]


def test_run_json_prints_typed_events_and_reads_env_settings() -> None:
    with ThreadedStub([Reply(body=chat_body("hi there"))]) as srv:
        p = qwenkit("run", "hello", "--json", "--format", "qwen",
                    env={"QWENKIT_BASE_URL": srv.base_url, "QWENKIT_MODEL": "qwen-env", "QWENKIT_API_KEY": "k1"})
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert events[-1]["result"]["answer"] == "hi there"
    assert srv.requests[0]["model"] == "qwen-env"


def test_server_down_is_one_line_exit_2() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = qwenkit("run", "hi", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m")
    assert p.returncode == 2
    assert "cannot reach the model server" in p.stderr and "Traceback" not in p.stderr + p.stdout


def test_wrong_model_name_is_one_line_exit_2() -> None:
    body = {"error": {"message": "The model `nope` does not exist.", "type": "NotFoundError", "code": 404}}
    with ThreadedStub([Reply(404, body)]) as srv:
        p = qwenkit("run", "hi", "--base-url", srv.base_url, "--model", "nope")
    assert p.returncode == 2 and "has no model 'nope'" in p.stderr and "Traceback" not in p.stderr


def test_bad_flags_are_one_line_exit_2() -> None:
    for args in (["run", "hi", "--format", "xml"], ["run", "hi", "--max-steps", "many"], ["frobnicate"],
                 ["run", "hi", "--tool", "rm_rf"]):
        p = qwenkit(*args)
        assert p.returncode == 2, args
        assert p.stderr.count("\n") == 1 and "error:" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_base_url_without_model_is_a_config_error() -> None:
    p = qwenkit("run", "hi", "--base-url", "http://127.0.0.1:9/v1")
    assert p.returncode == 2 and "--model" in p.stderr and "Traceback" not in p.stderr


def test_chat_keeps_history_between_turns() -> None:
    with ThreadedStub([Reply(body=chat_body("Hello Ann.")), Reply(body=chat_body("You are Ann."))]) as srv:
        p = qwenkit("chat", "--base-url", srv.base_url, "--model", "m", "--format", "nous",
                    stdin="I am Ann.\nWho am I?\n/exit\n")
    assert p.returncode == 0, p.stderr
    assert "Hello Ann." in p.stdout and "You are Ann." in p.stdout
    second = [m["content"] for m in srv.requests[1]["messages"]]
    assert second[-3:] == ["I am Ann.", "Hello Ann.", "Who am I?"]


def test_exit_code_is_0_with_an_answer_even_after_max_steps_and_1_without() -> None:
    looping = call("calculator", expression="1+1")
    replies = [Reply(body=chat_body(looping)), Reply(body=chat_body("It is 2."))]
    with ThreadedStub(replies) as srv:
        p = qwenkit("run", "1+1?", "--base-url", srv.base_url, "--model", "m", "--format", "nous",
                    "--tool", "calculator", "--max-steps", "1")
    assert p.returncode == 0, p.stderr
    assert "It is 2." in p.stdout and "max_steps" in p.stdout
    with ThreadedStub([Reply(body=chat_body(looping)), Reply(body=chat_body(""))]) as srv:
        p = qwenkit("run", "1+1?", "--base-url", srv.base_url, "--model", "m", "--format", "nous",
                    "--tool", "calculator", "--max-steps", "1")
    assert p.returncode == 1, p.stderr


def test_python_dash_m_qwenkit_runs_the_command() -> None:
    p = subprocess.run([sys.executable, "-m", "qwenkit", "run", "hi", "--format", "xml"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "invalid choice" in p.stderr


def one_line_exit_2(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stdout + p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("qwenkit: error: ")
    return p.stderr


def test_hostile_settings_are_one_line_exit_2_naming_the_setting() -> None:
    # The cases of issue 9 that were tracebacks or silent nonsense; tests/test_cli_validation.py has the rest.
    server = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    cases: list[tuple[list[str], dict[str, str], str]] = [
        (["run", "hi", "--temperature", "nan", *server], {}, "argument --temperature: expected a finite number"),
        (["run", "hi", "--model", "m"], {"QWENKIT_BASE_URL": "http://127.0.0.1:99999/v1"},
         "QWENKIT_BASE_URL: the model server URL 'http://127.0.0.1:99999/v1' is not a valid URL"),
        (["run", "hi", "--model", "m", "--base-url", "http://[::1/v1"], {},
         "--base-url: the model server URL 'http://[::1/v1' is not a valid URL"),
        (["run", "hi", *server], {"QWENKIT_API_KEY": "clé"}, "QWENKIT_API_KEY: the API key has a non-ASCII"),
        (["run", "hi", *server], {"QWENKIT_API_KEY": "sk-1\n"}, "QWENKIT_API_KEY: the API key has a line break"),
        (["run", "", *server], {}, "the question is empty"),
    ]
    with ThreadPoolExecutor(3) as pool:  # each start imports qwenkit; overlap them
        runs = list(pool.map(lambda case: qwenkit(*case[0], env=case[1]), cases))
    for (argv, _, says), p in zip(cases, runs, strict=True):
        assert says in one_line_exit_2(p), argv


def test_dash_reads_the_question_from_stdin_and_bad_bytes_are_one_line_exit_2() -> None:
    with ThreadedStub([Reply(body=chat_body("Four."))]) as srv:
        p = qwenkit("run", "-", "--base-url", srv.base_url, "--model", "m", stdin="What is 2+2?\n")
    assert p.returncode == 0 and "Four." in p.stdout, p.stderr
    assert srv.requests[0]["messages"][-1]["content"] == "What is 2+2?\n"
    bad = subprocess.run([sys.executable, "-m", "qwenkit.cli", "run", "-", "--base-url", "http://127.0.0.1:9/v1",
                          "--model", "m"], input=b"caf\xe9?", capture_output=True, timeout=60)
    err = one_line_exit_2(subprocess.CompletedProcess(bad.args, bad.returncode, bad.stdout.decode(),
                                                      bad.stderr.decode()))
    assert "the question on standard input is not valid UTF-8 (byte 4 is 0xe9)" in err


def test_chat_with_invalid_utf8_on_stdin_is_one_line_exit_2() -> None:
    with ThreadedStub([Reply(body=chat_body("Hello."))]) as srv:
        p = subprocess.run([sys.executable, "-m", "qwenkit.cli", "chat", "--base-url", srv.base_url, "--model", "m"],
                           input=b"hi\n\xff\xfe\nnever sent\n", capture_output=True, timeout=60)
    assert p.returncode == 2 and b"Traceback" not in p.stderr + p.stdout
    assert p.stderr.decode() == "qwenkit: error: line 2 of standard input is not valid UTF-8 (byte 1 is 0xff)\n"
    assert b"Hello." in p.stdout and len(srv.requests) == 1


def test_lone_surrogates_from_the_server_never_crash_the_output(tmp_path: Path) -> None:
    # JSON may carry a lone surrogate as an escape; every way the CLI writes the reply must survive it.
    for extra in ([], ["--json"], ["--transcript", str(tmp_path / "run.jsonl")]):
        with ThreadedStub([Reply(body=chat_body("half \ud800 a pair"))]) as srv:
            p = subprocess.run([sys.executable, "-m", "qwenkit.cli", "run", "hi", "--base-url", srv.base_url,
                                "--model", "m", *extra], capture_output=True, timeout=60)
        assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
        assert "half \ufffd a pair" in p.stdout.decode("utf-8"), extra
    assert "half \ufffd a pair" in (tmp_path / "run.jsonl").read_text(encoding="utf-8")


def test_a_closed_output_pipe_ends_quietly() -> None:
    # `qwenkit run ... --json | head -0`: the reader is gone before the first line.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")}
    with ThreadedStub([Reply(body=chat_body("hello"))]) as srv:
        p = subprocess.Popen([sys.executable, "-m", "qwenkit.cli", "run", "hi", "--base-url", srv.base_url,
                              "--model", "m", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()
        err = p.stderr.read()
        assert p.wait(timeout=60) == 141 and err == b""
