"""``qwenkit bench`` over several replicas (repeated ``--base-url``): the preflight checks every one.

All replicas down, or one serving another model, is one line with exit code 2 in a real process; one
replica down among others is a note, and the records go to the others.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.bench.test_bench_cli import run_cli
from tests.llm.stub_server import Reply, ThreadedStub, chat_body


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def serving(*names: str) -> ThreadedStub:
    """A stub that lists ``names`` at /v1/models and answers every chat request "pong"."""
    stub = ThreadedStub([])
    stub.server.routes = {"/v1/models": Reply(body={"object": "list",
                                                    "data": [{"id": n, "object": "model"} for n in names]})}
    stub.server.default = Reply(body=chat_body("pong"))
    return stub


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")}
    return subprocess.run([sys.executable, "-m", "qwenkit.cli", "bench", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def one_line(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stdout + p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("qwenkit: error: ")
    return p.stderr


def test_all_replicas_down_is_one_line_naming_them(bfcl_dir: Path, tmp_path: Path) -> None:
    first, second = refused_url(), refused_url()
    line = one_line(bench("bfcl", "--base-url", first, "--base-url", second, "--model", "m", "--data-dir",
                          str(bfcl_dir), "--out", str(tmp_path / "out"), "--no-progress"))
    assert "none of the 2 model servers answered" in line and "are they running?" in line
    assert f"cannot reach the model server at {first}" in line and f"cannot reach the model server at {second}" in line
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_a_replica_serving_another_model_is_one_line_naming_it(bfcl_dir: Path, tmp_path: Path) -> None:
    with serving("stub") as good, serving("other") as odd:
        p = bench("bfcl", "--base-url", good.base_url, "--base-url", odd.base_url, "--model", "stub",
                  "--data-dir", str(bfcl_dir), "--out", str(tmp_path / "out"), "--no-progress")
        assert not good.requests and not odd.requests  # refused before any record
    line = one_line(p)
    assert f"the model server at {odd.base_url} serves 'other', not 'stub' as {good.base_url} does" in line


def test_one_replica_down_is_a_note_and_the_others_share_the_records(bfcl_dir: Path, tmp_path: Path) -> None:
    down = refused_url()
    with serving("stub") as one, serving("stub") as two:
        code, err = run_cli(["bench", "bfcl", "--base-url", one.base_url, "--base-url", down, "--base-url",
                             two.base_url, "--model", "stub", "--data-dir", str(bfcl_dir), "--out", str(tmp_path),
                             "--limit", "2", "--no-progress", "--format", "nous", "--concurrency", "2"])
    assert code == 0, err
    assert err.startswith("note: 1 of 3 model servers did not answer") and down in err
    assert json.loads((tmp_path / "report.json").read_text())["records"] == 10
    assert one.requests and two.requests and len(one.requests) + len(two.requests) == 10


def test_a_replica_refusing_the_key_is_one_line(bfcl_dir: Path, tmp_path: Path) -> None:
    with serving("stub") as good, ThreadedStub([]) as locked:
        locked.routes = {"/v1/models": Reply(401, {"error": {"message": "bad key"}})}
        code, msg = run_cli(["bench", "bfcl", "--base-url", good.base_url, "--base-url", locked.base_url,
                             "--model", "stub", "--data-dir", str(bfcl_dir), "--out", str(tmp_path),
                             "--no-progress"])
    assert code == 2 and msg == f"the model server at {locked.base_url} refused the API key (HTTP 401)."
