"""`QwenkitCodeInterpreter`: qwenkit's sandbox as a Qwen-Agent tool, driven by a real Qwen-Agent `FnCallAgent`
talking to a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("qwen_agent") is None:
    pytest.skip("qwen-agent is not installed (extra qwenkit[qwen-agent]; CI installs it)", allow_module_level=True)

from qwen_agent.agents import FnCallAgent
from qwen_agent.tools.base import TOOL_REGISTRY, ToolServiceError

from qwenkit.errors import ConfigError, SandboxUnavailable, SessionClosed
from qwenkit.integrations._qwen_agent_ci import _code_from
from qwenkit.integrations.qwen_agent import QwenkitCodeInterpreter
from qwenkit.sandbox.isolation import BubblewrapPolicy
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
from tests.integrations.oai_server import ScriptedOpenAIServer
from tests.sandbox.helpers import descendant_kernel_processes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOT = "import matplotlib.pyplot as plt\nplt.plot([0, 1, 2], [0, 1, 4])\nplt.show()"


def tool_call(code: str) -> str:
    """A nous-format call, as Qwen-Agent's default function-calling prompt asks the model to write it."""
    return f'<tool_call>\n{json.dumps({"name": "code_interpreter", "arguments": {"code": code}})}\n</tool_call>'


def llm_cfg(server: ScriptedOpenAIServer) -> dict[str, Any]:
    return {
        "model": "scripted", "model_type": "oai", "model_server": server.base_url, "api_key": "EMPTY",
        # Pin Qwen-Agent's own prompt-based function calling (nous) whatever the environment says.
        "generate_cfg": {"use_raw_api": False, "fncall_prompt_type": "nous", "max_retries": 0},
    }


def ci_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("qwenkit-code-interpreter-") and t.is_alive()]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Qwen-Agent writes its workspace (memory, tool files) under the working directory.
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def ci(tmp_path: Path) -> Iterator[QwenkitCodeInterpreter]:
    tool = QwenkitCodeInterpreter({"timeout": 20, "work_dir": str(tmp_path / "ci")})
    yield tool
    tool.close()


def test_code_is_read_from_json_json5_a_dict_or_raw_text() -> None:
    assert _code_from('{"code": "x = 1"}') == "x = 1"
    assert _code_from("{code: 'x = 2',}") == "x = 2"  # JSON5, as Qwen-Agent reads it
    assert _code_from({"code": "x = 3"}) == "x = 3"
    assert _code_from("```python\nx = 4\n```") == "```python\nx = 4\n```"  # the interpreter unwraps fences
    assert _code_from("[1, 2]") == "[1, 2]"  # JSON, but not arguments: it is the code
    assert _code_from('{"code": 123}') == "123"
    assert _code_from({"cmd": "x"}) == ""  # no code: the interpreter asks the model for it
    deep = "[" * 200_000
    assert _code_from(deep) == deep  # nesting past the parsers' limits is text, not a crash


def test_it_is_a_qwen_agent_tool_named_like_qwen_agents_own_and_registers_nothing(ci: QwenkitCodeInterpreter) -> None:
    before = dict(TOOL_REGISTRY)
    assert ci.name == "code_interpreter" and ci.function["parameters"]["required"] == ["code"]
    assert "triple backticks" in ci.args_format
    assert not ci.file_access
    QwenkitCodeInterpreter().close()
    assert before == TOOL_REGISTRY  # Qwen-Agent's own 'code_interpreter' is still the registered one


def test_importing_the_module_imports_no_qwen_agent_and_a_missing_one_names_the_extra() -> None:
    script = textwrap.dedent("""
        import sys
        import qwenkit.integrations.qwen_agent as bridge
        assert "qwen_agent" not in sys.modules, "imported Qwen-Agent at import time"
        sys.modules["qwen_agent"] = None  # as if it were not installed
        try:
            from qwenkit.integrations.qwen_agent import QwenkitCodeInterpreter
        except ImportError as exc:
            print("ImportError:", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ImportError:" in out.stdout and "qwenkit[qwen-agent]" in out.stdout


def test_bad_settings_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="timeout"):
        QwenkitCodeInterpreter({"timeout": -1})
    with pytest.raises(ConfigError, match="policy"):
        QwenkitCodeInterpreter({"policy": "docker"})


def test_a_sandbox_that_cannot_run_ends_the_qwen_agent_run(in_tmp: Path) -> None:
    broken = CodeInterpreter(policy=BubblewrapPolicy(bwrap=str(in_tmp / "no-such-bwrap")))
    with ScriptedOpenAIServer([tool_call("1 + 1"), "never reached"]) as server, \
            QwenkitCodeInterpreter(interpreter=broken) as ci:
        agent = FnCallAgent(function_list=[ci], llm=llm_cfg(server))
        with pytest.raises(ToolServiceError) as info:
            agent.run_nonstream([{"role": "user", "content": "add"}])
        assert isinstance(info.value.exception, SandboxUnavailable)
        assert isinstance(info.value.__cause__, SandboxUnavailable)
        assert server.unused == ["never reached"]


def test_a_closed_tool_refuses_calls_and_leaves_no_thread() -> None:
    ci = QwenkitCodeInterpreter()
    ci.close()
    ci.close()  # idempotent
    with pytest.raises(ToolServiceError) as info:
        ci.call('{"code": "1"}')
    assert isinstance(info.value.exception, SessionClosed)
    assert ci.closed and ci_threads() == []


@pytest.mark.sandbox
def test_a_fn_call_agent_keeps_kernel_state_and_gets_plots_as_markdown(in_tmp: Path) -> None:
    replies = [tool_call("x = 41"), tool_call("print(x + 1)"), tool_call(PLOT), "x + 1 is 42; the plot is above."]
    with ScriptedOpenAIServer(replies) as server, \
            QwenkitCodeInterpreter({"timeout": 20, "work_dir": str(in_tmp / "ci")}) as ci:
        agent = FnCallAgent(function_list=[ci], llm=llm_cfg(server))
        messages = agent.run_nonstream([{"role": "user", "content": "Set x to 41, print x + 1, then plot."}])
        assert server.unused == []

    observations = [m["content"] for m in messages if m["role"] == "function"]
    assert len(observations) == 3
    assert "42" in observations[1]  # x survived from the first call: one kernel for the tool
    assert "stdout" in observations[1]
    image_md = observations[2].strip()
    assert image_md.startswith("![fig-001](") and image_md.endswith(".png)")
    image = Path(image_md.removeprefix("![fig-001](").removesuffix(")"))
    assert image.is_relative_to(in_tmp / "ci") and image.read_bytes().startswith(PNG_MAGIC)
    assert messages[-1]["role"] == "assistant" and "42" in messages[-1]["content"]
    # The model was shown each observation: Qwen-Agent sent the "42" back in the next request.
    assert "42" in json.dumps(server.requests[2]["messages"])
    assert ci_threads() == []  # closed by the with block


@pytest.mark.sandbox
def test_sessions_have_their_own_kernels_and_calls_work_from_threads_and_event_loops(
    ci: QwenkitCodeInterpreter,
) -> None:
    assert "Finished execution" in ci.call('{"code": "x = 1"}')
    assert "Finished execution" in ci.call({"code": "x = 2"}, session_id="b")
    assert "1" in ci.call("print(x)")
    assert "2" in ci.call("```python\nprint(x)\n```", session_id="b")

    async def from_a_running_loop() -> str:  # a sync call made inside someone else's event loop
        return ci.call('{"code": "print(x * 10)"}')

    assert "10" in asyncio.run(from_a_running_loop())

    seen: list[str] = []
    workers = [threading.Thread(target=lambda: seen.append(ci.call('{"code": "print(x * 100)"}'))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(seen) == 2 and all("100" in s for s in seen)

    ci.close_session("b")
    assert "NameError" in ci.call("print(x)", session_id="b")  # a new kernel
    assert "1" in ci.call("print(x)")  # the instance's own kernel was not touched


@pytest.mark.sandbox
def test_a_cell_past_the_call_timeout_is_interrupted_and_state_kept(ci: QwenkitCodeInterpreter) -> None:
    ci.call('{"code": "kept = 7"}')
    out = ci.call('{"code": "import time\\ntime.sleep(30)"}', timeout=1)
    assert "interrupted after 1 s" in out
    assert "7" in ci.call('{"code": "print(kept)"}')


@pytest.mark.sandbox
def test_empty_code_is_a_correction_for_the_model(ci: QwenkitCodeInterpreter) -> None:
    assert "code is empty" in ci.call('{"code": "   "}')


@pytest.mark.sandbox
def test_a_dropped_tool_kills_its_kernel_and_stops_its_thread(tmp_path: Path) -> None:
    ci = QwenkitCodeInterpreter({"timeout": 20, "pool_size": 0})
    assert "3" in ci.call('{"code": "print(1 + 2)"}')
    assert descendant_kernel_processes() and ci_threads()
    del ci
    gc.collect()
    deadline = time.monotonic() + 20  # a bound on the wait, not a speed check
    while (descendant_kernel_processes() or ci_threads()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert descendant_kernel_processes() == [] and ci_threads() == []


@pytest.mark.sandbox
def test_figures_are_numbered_per_call_and_linked_under_the_static_url(tmp_path: Path) -> None:
    cfg = {"timeout": 20, "work_dir": str(tmp_path / "ci"), "static_url": "http://files.local/ci/"}
    two_plots = f"{PLOT}\nplt.figure()\nplt.plot([3, 2, 1])\nplt.show()"
    with QwenkitCodeInterpreter(cfg) as ci:
        out = ci.call({"code": two_plots})
        again = ci.call({"code": PLOT})
    conversation = ci.conversation_id()
    first = out.splitlines()[0]
    assert first.startswith(f"![fig-001](http://files.local/ci/{conversation}/") and first.endswith(".png)")
    assert out.split("\n\n")[1].startswith("![fig-002](http://files.local/ci/")
    assert again.startswith("![fig-001](http://files.local/ci/")  # numbered per call, as Qwen-Agent does
    served = again.removeprefix("![fig-001](http://files.local/ci/").removesuffix(")")
    assert (tmp_path / "ci" / served).read_bytes().startswith(PNG_MAGIC)  # the URL maps onto work_dir


def test_a_static_url_without_a_work_dir_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="static_url needs work_dir"):
        QwenkitCodeInterpreter({"static_url": "http://files.local/"})
