"""The web chat and HTTP API around an agent with the sandboxed code interpreter.

    python examples/web_chat.py                 # a scripted demo model: try "plot sin(x)" (no model needed)
    QWENKIT_BASE_URL=http://127.0.0.1:8000/v1 QWENKIT_MODEL=Qwen/Qwen2.5-7B-Instruct python examples/web_chat.py

Then open http://127.0.0.1:8700/ . Any OpenAI client can also talk to the agent at
http://127.0.0.1:8700/v1 (``/v1/chat/completions``).
"""

from __future__ import annotations

import json
import os
import sys

from qwenkit import Agent, CodeInterpreter, OpenAICompatible
from qwenkit.llm.base import ChatModel, ChatRequest
from qwenkit.server import ServerSettings
from qwenkit.server.cli import serve
from qwenkit.testing import FunctionModel

DEMO_CODE = (
    "import numpy as np\nimport matplotlib.pyplot as plt\nx = np.linspace(0, 2 * np.pi, 200)\n"
    "plt.plot(x, np.sin(x)); plt.title('sin(x) 正弦'); plt.show()"
)


def demo_reply(request: ChatRequest) -> str:
    """A stand-in model: plots when asked to, otherwise explains itself."""
    last = request.messages[-1]
    if last.role != "user":
        return "Here is the plot of **sin(x)** over one period."
    if "plot" in last.content.lower():
        return "Let me plot it.\n✿FUNCTION✿: code_interpreter\n✿ARGS✿: " + json.dumps({"code": DEMO_CODE})
    return "This is a scripted demo model. Ask me to *plot sin(x)*, or set `QWENKIT_BASE_URL` for a real one."


def pick_model() -> ChatModel:
    base_url = os.environ.get("QWENKIT_BASE_URL")
    if base_url:
        model = os.environ.get("QWENKIT_MODEL", "qwen")
        return OpenAICompatible(model, base_url, os.environ.get("QWENKIT_API_KEY", "EMPTY"))
    return FunctionModel(demo_reply, name="scripted-demo")


def make_agent() -> Agent:
    return Agent(pick_model(), tools=[CodeInterpreter()], format="qwen", max_steps=6)


if __name__ == "__main__":
    sys.exit(serve(make_agent, ServerSettings(port=int(os.environ.get("PORT", "8700")))))
