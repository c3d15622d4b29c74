"""`AgentTool`: one agent used as a tool by another (``agent.as_tool(...)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qwenkit.agents.events import RunFinished, RunResult
from qwenkit.tools.base import Tool, ToolContext, ToolOutput
from qwenkit.types import ToolSpec

if TYPE_CHECKING:
    from qwenkit.agents.agent import Agent


class AgentTool(Tool):
    """Runs an inner agent on the task the outer model writes; the inner answer is the observation.

    The inner run keeps its own ``max_steps``, tools and format; its events reach the outer stream as
    `NestedEvent`\\ s under the call (with the inner conversation id), its tokens add to the outer run's usage,
    and the outer run's ``deps`` are passed on.

    Args:
        agent: The inner agent.
        name: The tool name the outer model writes.
        description: What the inner agent is good for, for the outer model.
    """

    def __init__(self, agent: Agent[Any], name: str, description: str) -> None:
        self.agent = agent
        self.spec = ToolSpec(name=name, description=description, parameters={
            "type": "object",
            "properties": {"task": {"type": "string", "description": "The task, with everything needed to do it."}},
            "required": ["task"],
        })

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        result: RunResult | None = None
        async for event in self.agent.stream(str(args["task"]), deps=ctx.deps):
            if ctx.emit is not None:
                ctx.emit(event)
            if isinstance(event, RunFinished):
                result = event.result
        if result is None:  # the inner loop always ends with RunFinished unless it raised
            raise RuntimeError(f"the {self.name} agent ended without a result")
        if result.status in ("completed", "max_steps") and result.answer:
            return ToolOutput(text=result.answer, usage=result.usage)
        why = result.error or "no answer"
        return ToolOutput(text=f"Error: the {self.name} agent ended with status {result.status}: {why}",
                          is_error=True, usage=result.usage)
