"""An agent run that needs no model server: a scripted model makes two parallel tool calls, then answers.

Shows typed tools, parallel calls that really overlap, streamed typed events and a JSON Lines
transcript that a killed run can resume from. Run: ``python examples/offline_agent.py``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from qwenkit import Agent, tool
from qwenkit.agents import FinalAnswer, RunFinished, ToolCallEvent, ToolResultEvent
from qwenkit.testing import ScriptedModel


@tool
async def get_weather(city: str, unit: str = "celsius") -> dict[str, object]:
    """Current weather for a city (a stand-in that waits like a real API would).

    Args:
        city: City name.
        unit: "celsius" or "fahrenheit".
    """
    await asyncio.sleep(0.5)
    return {"city": city, "temperature": 21 if city == "Paris" else 17, "unit": unit}


def call(name: str, **arguments: object) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


async def main() -> None:
    model = ScriptedModel([
        call("get_weather", city="Paris") + "\n" + call("get_weather", city="Berlin"),
        "Paris is warmer: 21 °C against 17 °C in Berlin.",
    ])
    agent = Agent(model, tools=[get_weather], format="nous")
    transcript = Path(tempfile.mkdtemp()) / "run.jsonl"
    start = time.perf_counter()
    async for event in agent.stream("Is Paris or Berlin warmer right now?", transcript=transcript):
        match event:
            case ToolCallEvent():
                print(f"call   {event.call.name}({event.call.arguments})")
            case ToolResultEvent():
                print(f"result {event.result.content}")
            case FinalAnswer():
                print(f"answer {event.text}")
            case RunFinished():
                print(f"status {event.result.status} after {event.result.steps} steps")
    print(f"two 0.5 s calls took {time.perf_counter() - start:.2f} s in all (they ran in parallel)")
    print(f"transcript: {len(transcript.read_text().splitlines())} events in {transcript}")


if __name__ == "__main__":
    asyncio.run(main())
