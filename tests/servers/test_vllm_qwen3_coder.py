"""Qwen3-Coder's call format through a real vLLM (CPU) server with the ``qwen3_coder`` tool parser.

The server (``vllm_qwen3_coder_server`` in conftest.py) serves a tiny random Qwen3 with Qwen3-Coder's chat
template (tests/servers/data/PROVENANCE). Random weights never write a call on their own, so vLLM's
``qwen3_coder`` parser is exercised only as far as a forced call goes; the template's XML format is checked
through `template_info`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit.agents.agent import Agent
from qwenkit.llm.base import Sampling
from qwenkit.llm.openai_compat import OpenAICompatible
from qwenkit.tools import tool
from qwenkit.types import ToolMessage
from tests.servers.conftest import Server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture
def model(vllm_qwen3_coder_server: Server) -> OpenAICompatible:
    return OpenAICompatible(vllm_qwen3_coder_server.model, vllm_qwen3_coder_server.base_url, timeout=120,
                            max_retries=0)


async def test_template_info_sees_the_xml_call_format(model: OpenAICompatible) -> None:
    info = await model.template_info()
    assert info is not None and info.probe_render is not None
    render = info.probe_render
    assert "<tools>\n<function>\n<name>qwenkit_probe_tool</name>" in render
    assert ("<tool_call>\n<function=qwenkit_probe_tool>\n<parameter=probe_arg>\nqwenkit_probe_value\n"
            "</parameter>\n</function>\n</tool_call>") in render
    assert '{"name": "qwenkit_probe_tool"' not in render  # not the JSON (nous) format
    assert info.thinking is False and info.max_input_tokens == 4096


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First number.
        b: Second number.
    """
    return a + b


async def test_a_forced_native_call_goes_through_the_agent(model: OpenAICompatible) -> None:
    sampling = Sampling(temperature=1.0, seed=1, max_tokens=64)
    agent = Agent(model, tools=[add], format="native", tool_choice="add", max_steps=2, sampling=sampling)
    result = await agent.arun("What is 2 + 3?")
    assert result.error is None and result.steps >= 1
    observations = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert observations and all(m.name == "add" for m in observations)


def test_bench_format_auto_asks_the_server_and_runs_in_qwen3_coder(
    vllm_qwen3_coder_server: Server, tmp_path: Path,
) -> None:
    from tests.bench.conftest import bfcl_data_dir
    from tests.bench.test_bench_cli import run_cli

    argv = ["bench", "bfcl", "--base-url", vllm_qwen3_coder_server.base_url, "--model",
            vllm_qwen3_coder_server.model, "--data-dir", str(bfcl_data_dir()), "--categories", "simple_python",
            "--limit", "1", "--format", "auto", "--max-tokens", "16", "--out", str(tmp_path), "--no-progress"]
    code, err = run_cli(argv)
    assert code == 0 and err.startswith("prompt format: qwen3_coder (") and "<function=" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["format"] == "qwen3_coder" and report["records"] == 1
