"""`LoopConfig`: the immutable settings one agent run goes with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qwenkit.agents.limits import UsageLimits
from qwenkit.agents.output import OutputSpec
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats.base import PromptFormat
from qwenkit.tools.registry import ToolRegistry

FINAL_ANSWER_PROMPT = (
    "You have used all the steps you were given. Do not call any tool. Using what you found above, "
    "give your best final answer to my question now."
)
"""The user turn added for the extra call made after the steps ran out (`Agent.final_answer_at_max_steps`)."""

EMPTY_ANSWER_PROMPT = "Your last reply was empty. Answer my question now, using what you found above."
"""The user turn added when the model's final reply is empty, to ask once more."""

REPEATED_ANSWER_PROMPT = (
    "You already have the results of those calls above. Do not call any tool. Using them, answer my question now."
)
"""The user turn added, with tools withheld, after a turn whose calls all repeated the turn before."""

PARSE_OFF_LOOP_CHARS = 64_000
"""Replies longer than this are parsed in a worker thread, so a huge reply cannot stall other conversations."""


@dataclass(frozen=True)
class LoopConfig:
    """Everything the loop needs; immutable, so one config serves many conversations at once.

    Attributes:
        model: The chat model.
        fmt: The prompt format.
        tools: The tools the model may call.
        sampling: Sampling settings for every call.
        max_steps: Most model calls that may request tools.
        tool_choice: Native format only: ``auto``, ``required``, ``none`` or a tool name.
        stream_tokens: Use the model's stream and emit text deltas.
        tool_timeout: Seconds per tool call, overriding each tool's own limit.
        final_answer_prompt: When the steps run out, ask once more with this user message and no tools,
            so the run still ends with an answer (status stays ``max_steps``). Empty: don't ask.
        deps: The application's object handed to tools as `ToolContext.deps`.
        agent_name: The agent's name, handed to tools as `ToolContext.agent_name`.
        limits: Hard caps on the run's spending (``None``: none).
        output: How the final answer becomes a typed object (``None``: plain text).
        output_retries: How often an answer that fails validation is sent back before ``output_invalid``.
        decisions: A person's decisions on calls that need approval, by call id (see `Agent.resume`).
        retry_empty_answer: An empty final reply is asked for once more before the run ends ``empty_answer``.
        max_input_tokens: The model's context window; prompts that would not fit (with room for the reply)
            are cut (see `qwenkit.agents._context`). ``None``: no check.
        thinking: Qwen3's thinking switch sent with every request (``None``: the template's default).
        repeated_call_guard: A call identical (same name and arguments) to one of the turn before is not run
            again: the model is shown the earlier result and asked to answer (small models loop otherwise).
    """

    model: ChatModel
    fmt: PromptFormat
    tools: ToolRegistry
    sampling: Sampling
    max_steps: int
    tool_choice: str | None = None
    stream_tokens: bool = False
    tool_timeout: float | None = None
    final_answer_prompt: str = ""
    deps: Any = None
    agent_name: str = "agent"
    limits: UsageLimits | None = None
    output: OutputSpec | None = None
    output_retries: int = 2
    decisions: Mapping[str, bool | str] = field(default_factory=dict)
    repeated_call_guard: bool = True
    retry_empty_answer: bool = True
    max_input_tokens: int | None = None
    thinking: bool | None = None
