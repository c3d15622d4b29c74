"""An agent over a real model: a vLLM/OpenAI-compatible server, or the embedded model when none is set.

    QWENKIT_BASE_URL=http://127.0.0.1:8000/v1 QWENKIT_MODEL=Qwen/Qwen2.5-7B-Instruct python examples/server_agent.py
    python examples/server_agent.py          # embedded model (after `qwenkit models pull`)
"""

from __future__ import annotations

import asyncio
import os

from qwenkit import Agent, OpenAICompatible, tool
from qwenkit.agents import FinalAnswer, ToolCallEvent, ToolResultEvent
from qwenkit.llm.base import ChatModel


@tool(name="math.factorial")
def factorial(n: int) -> int:
    """Return n! exactly.

    Args:
        n: A non-negative integer.
    """
    out = 1
    for i in range(2, n + 1):
        out *= i
    return out


def pick_model() -> ChatModel:
    if base_url := os.environ.get("QWENKIT_BASE_URL"):
        return OpenAICompatible(os.environ.get("QWENKIT_MODEL", "qwen"), base_url)
    from qwenkit.llm.local import LocalModel
    from qwenkit.llm.store import ModelStore

    return LocalModel(ModelStore().path())


async def main() -> None:
    agent = Agent(pick_model(), tools=[factorial], format="nous", max_steps=3)
    async for event in agent.stream("What is 12 factorial? Call the tool."):
        if isinstance(event, ToolCallEvent):
            print("call:", event.call.name, event.call.arguments)
        elif isinstance(event, ToolResultEvent):
            print("result:", event.result.content)
        elif isinstance(event, FinalAnswer):
            print("answer:", event.text)


if __name__ == "__main__":
    asyncio.run(main())
