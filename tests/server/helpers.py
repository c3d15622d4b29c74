"""Helpers for the server tests: a scripted "brain" model, SSE parsing, in-process and live servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from qwenkit import Agent
from qwenkit.llm.base import ChatRequest
from qwenkit.llm.formats import get_format
from qwenkit.testing import FunctionModel
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
from qwenkit.types import ToolCall

BASE = "http://127.0.0.1"

PLOT_CODE = (
    "import numpy as np\nimport matplotlib.pyplot as plt\n"
    "x = np.linspace(0, 2 * np.pi, 200)\nplt.plot(x, np.sin(x))\nplt.title('sin(x)')\nplt.show()\n"
    "print('plotted', len(x), 'points')"
)
CSV_CODE = "import pandas as pd\ndf = pd.read_csv('data.csv')\nprint('total', df['value'].sum())"
SLEEP_CODE = "import time\ntime.sleep(120)"
WRITE_CODE = "import os\nos.makedirs('out', exist_ok=True)\nopen('out/report.txt', 'w').write('hello from the kernel')"
LINK_CODE = "import os\nos.symlink('/etc/hostname', 'escape')\nprint('linked')"
ALIVE_CODE = "print('still alive', 6 * 7)"


def code_call(code: str, lead: str = "") -> str:
    """A reply (qwen format) calling the code interpreter with ``code``."""
    call = ToolCall(name="code_interpreter", arguments={"code": code})
    fmt: Any = get_format("qwen")  # the qwen format writes calls as the model would (render_calls)
    return lead + fmt.render_calls([call])


RULES: dict[str, str] = {
    "plot": code_call(PLOT_CODE, "I'll plot it.\n"),
    "csv": code_call(CSV_CODE, "Reading the CSV.\n"),
    "sleep": code_call(SLEEP_CODE),
    "write": code_call(WRITE_CODE),
    "symlink": code_call(LINK_CODE),
    "alive": code_call(ALIVE_CODE),
    "think": "<think>The user wants a greeting; 简短一点。</think>Hi there, **friend**.",
    "html": '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> [click](javascript:window.pwned=3) '
            '**safe**',
}


def brain(request: ChatRequest) -> str:
    """Answer a new user message by its keyword (a code call), and a tool result with a summary."""
    last = request.messages[-1]
    if last.role == "user":
        for word, reply in RULES.items():
            if word in last.content.lower():
                return reply
        return "Hello! **你好**，世界。\n\n```python\nprint('hi')\n```"
    result = last.content.rsplit("✿RESULT✿:", 1)[-1].split("✿RETURN✿", 1)[0].strip()
    lines = [x for x in result.splitlines() if x.strip() and x.strip() not in ("stdout:", "```")]
    first = lines[0] if lines else "(nothing)"
    return f"Done. The code printed: `{first}`. Here is the plot of **sin(x)**." if "plotted" in result \
        else f"Done. The code printed: `{first}`"


def brain_agent(**interpreter: Any) -> Callable[[], Agent[Any]]:
    """A factory of agents on `brain` with a code interpreter (no warm pool: kernels on demand)."""

    def make() -> Agent[Any]:
        tool = CodeInterpreter(pool_size=0, **interpreter)
        return Agent(FunctionModel(brain), tools=[tool], format="qwen", max_steps=4)

    return make


def parse_sse(text: str) -> list[tuple[int | None, str, dict[str, Any]]]:
    """(id, event type, data) of each event in an SSE body (comments skipped)."""
    out: list[tuple[int | None, str, dict[str, Any]]] = []
    for block in text.split("\n\n"):
        ident: int | None = None
        kind = "message"
        data: list[str] = []
        for line in block.splitlines():
            if line.startswith("id: "):
                ident = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((ident, kind, json.loads("\n".join(data))))
    return out


@contextlib.asynccontextmanager
async def client_for(app: Starlette, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app (through ASGI, lifespan run); ``key`` sent as a bearer token."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, headers=headers, timeout=60
    ) as client:
        yield client


async def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(app: Starlette, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` on uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=5, lifespan="on"))
    thread = threading.Thread(target=server.run, name="qwenkit-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
