"""A planner agent that hands code work to a code-interpreter agent (``agent.as_tool``).

The planner sees one tool, ``coder``; each call runs the coder agent, which has the sandboxed code
interpreter, on the task the planner wrote, and the coder's answer comes back as the observation. The
coder's events arrive nested in the planner's stream. Scripted models stand in for real ones, so the
example runs offline; swap in ``OpenAICompatible(...)`` or ``LocalModel(...)`` for real models.
Run: ``python examples/planner_delegates.py`` (needs bubblewrap for the sandbox).
"""

from __future__ import annotations

import asyncio
import json

from qwenkit import Agent, CodeInterpreter, NestedEvent, RunFinished, ToolResultEvent
from qwenkit.testing import ScriptedModel


def call(name: str, **arguments: object) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


async def main() -> None:
    coder_model = ScriptedModel([
        call("code_interpreter", code="import math\nprint(sum(1 for n in range(2, 10_000) if all(n % d for d in "
                                      "range(2, math.isqrt(n) + 1))))"),
        "There are 1229 primes below 10000.",
    ])
    async with Agent(coder_model, tools=[CodeInterpreter()], name="coder") as coder:
        planner_model = ScriptedModel([
            call("coder", task="Count the primes below 10000 with Python and report the number."),
            "The coder counted 1229 primes below 10,000.",
        ])
        planner = Agent(planner_model, tools=[coder.as_tool("coder", "Writes and runs Python to answer a task.")],
                        name="planner")
        async for event in planner.stream("How many primes are there below 10,000?"):
            match event:
                case NestedEvent(event=ToolResultEvent() as inner):
                    shown = " ".join(inner.result.content.split())  # the observation on one line
                    print(f"  coder ran {inner.result.name}: {shown}")
                case ToolResultEvent():
                    print(f"planner got: {event.result.content}")
                case RunFinished():
                    usage = event.result.usage
                    print(f"answer: {event.result.answer}")
                    print(f"tokens (planner + coder): {usage.prompt_tokens} in, {usage.completion_tokens} out")


if __name__ == "__main__":
    asyncio.run(main())
