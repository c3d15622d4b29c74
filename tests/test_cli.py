"""The `qwenkit` command in a real subprocess against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

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
