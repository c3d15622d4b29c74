"""``qwenkit run --approve`` (asked on a real pseudo-terminal, or decided by flag) and ``--trace``."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from tests.llm.stub_server import Reply, ThreadedStub, chat_body


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")}


def _args(base_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qwenkit.cli", "run", "What is 6*7?", "--base-url", base_url, "--model", "m",
            "--format", "nous", "--require-approval", "calculator", *extra]


def _replies() -> list[Reply]:
    return [Reply(body=chat_body(call("calculator", expression="6*7"))), Reply(body=chat_body("It is 42."))]


def _drive_pty(argv: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal, answer the approval prompt with ``answer``; (exit code, output)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=_env(), close_fds=True)
    os.close(follower)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if not answered and b"[y/n]" in out:
                    os.write(leader, answer)
                    answered = True
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), out.decode("utf-8", "replace")
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()


def test_approval_asked_on_the_terminal_yes_runs_the_call() -> None:
    with ThreadedStub(_replies()) as srv:
        code, out = _drive_pty(_args(srv.base_url), b"y\n")
    assert code == 0, out
    assert "approve calculator" in out and "It is 42." in out
    assert "<tool_response>\n42\n</tool_response>" in srv.requests[1]["messages"][-1]["content"]


def test_approval_asked_on_the_terminal_no_denies_the_call() -> None:
    with ThreadedStub(_replies()) as srv:
        code, out = _drive_pty(_args(srv.base_url), b"n\n")
    assert code == 0, out
    assert "denied" in srv.requests[1]["messages"][-1]["content"]


def test_approve_all_and_none_for_scripts() -> None:
    with ThreadedStub(_replies()) as srv:
        p = subprocess.run(_args(srv.base_url, "--approve", "all", "--json"), capture_output=True, text=True,
                           timeout=60, env=_env(), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    types = [json.loads(x)["type"] for x in p.stdout.splitlines()]
    assert "approval_requested" in types and types[-1] == "run_finished"
    with ThreadedStub(_replies()) as srv:
        p = subprocess.run(_args(srv.base_url, "--approve", "none"), capture_output=True, text=True, timeout=60,
                           env=_env(), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "denied by --approve none" in srv.requests[1]["messages"][-1]["content"]


def test_ask_without_a_terminal_is_one_line_exit_2() -> None:
    with ThreadedStub(_replies()) as srv:
        p = subprocess.run(_args(srv.base_url), capture_output=True, text=True, timeout=60, env=_env(),
                           stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "--approve all" in p.stderr and "Traceback" not in p.stderr


def test_trace_console_prints_the_span_tree() -> None:
    replies = [Reply(body=chat_body(call("calculator", expression="6*7"))), Reply(body=chat_body("It is 42."))]
    with ThreadedStub(replies) as srv:
        p = subprocess.run([sys.executable, "-m", "qwenkit.cli", "run", "6*7?", "--base-url", srv.base_url,
                            "--model", "m", "--format", "nous", "--tool", "calculator", "--trace", "console"],
                           capture_output=True, text=True, timeout=60, env=_env())
    assert p.returncode == 0, p.stderr
    names = {json.loads(block)["name"] for block in _json_blocks(p.stderr)}
    assert {"invoke_agent agent", "chat m", "execute_tool calculator"} <= names


def _json_blocks(text: str) -> list[str]:
    """The console exporter prints one indented JSON object per span."""
    blocks, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
            if depth == 1:
                start = i
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                blocks.append(text[start : i + 1])
    return [b for b in blocks if '"name"' in b and '"context"' in b]
