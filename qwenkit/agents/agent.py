"""`Agent`: the public entry point that wires a model, a prompt format and tools to the loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from qwenkit.agents.config import LAST_WORD_PROMPT
from qwenkit.agents.events import Event, RunFinished, RunResult
from qwenkit.agents.loop import LoopConfig, run_loop
from qwenkit.agents.transcript import TranscriptWriter, load_transcript
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats import get_format
from qwenkit.llm.formats.base import PromptFormat
from qwenkit.tools.base import Tool
from qwenkit.tools.registry import ToolRegistry
from qwenkit.types import Message, SystemMessage, Usage, UserMessage


class Agent:
    """A tool-using agent over a Qwen chat model.

    The agent holds configuration only, so one instance may serve many conversations at once.

    Example:
        >>> agent = Agent(model, tools=[get_weather], format="qwen")
        >>> agent.run("Weather in Paris?").answer

    Args:
        model: Any `ChatModel` (``OpenAICompatible``, the embedded backend, or a test model).
        tools: A `ToolRegistry`, or tools to put in a new one.
        format: A `PromptFormat` or one of ``react``, ``qwen``, ``nous``, ``native``.
        system: System prompt put before each new conversation (``None``: none).
        max_steps: Most model calls in one run.
        sampling: Sampling settings (temperature 0 and seed 0 by default).
        tool_choice: ``auto``, ``required``, ``none`` or a tool name; only for the native format.
        tool_timeout: Seconds allowed per tool call, overriding each tool's own timeout.
        answer_at_max_steps: When the steps run out, ask the model once more, without tools, for its best
            answer (the status stays ``max_steps``), as smolagents does. Small models that keep calling
            tools still end with an answer.
    """

    def __init__(
        self,
        model: ChatModel,
        tools: ToolRegistry | Iterable[Tool] = (),
        format: PromptFormat | str = "nous",
        system: str | None = None,
        max_steps: int = 8,
        sampling: Sampling | None = None,
        tool_choice: str | None = None,
        tool_timeout: float | None = None,
        answer_at_max_steps: bool = True,
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.model = model
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.format = get_format(format) if isinstance(format, str) else format
        self.system = system
        self.max_steps = max_steps
        self.sampling = sampling or Sampling()
        self.tool_choice = tool_choice
        self.tool_timeout = tool_timeout
        self.answer_at_max_steps = answer_at_max_steps

    def _config(self, stream_tokens: bool) -> LoopConfig:
        return LoopConfig(
            model=self.model, fmt=self.format, tools=self.tools, sampling=self.sampling,
            max_steps=self.max_steps, tool_choice=self.tool_choice, stream_tokens=stream_tokens,
            tool_timeout=self.tool_timeout, last_word_prompt=LAST_WORD_PROMPT if self.answer_at_max_steps else "",
        )

    def _start(self, prompt: str, history: Sequence[Message] | None) -> list[Message]:
        msgs: list[Message] = list(history or [])
        if self.system is not None and not any(isinstance(m, SystemMessage) for m in msgs):
            msgs.insert(0, SystemMessage(content=self.system))
        msgs.append(UserMessage(content=prompt))
        return msgs

    async def _events(
        self, messages: Sequence[Message], *, conversation_id: str | None, transcript: str | Path | None,
        steps_done: int = 0, usage: Usage | None = None, stream_tokens: bool,
    ) -> AsyncIterator[Event]:
        owns_conversation = conversation_id is None
        cid = conversation_id or uuid.uuid4().hex
        try:
            writer = TranscriptWriter(transcript) if transcript is not None else None
        except OSError as err:
            raise ConfigError(f"cannot write the transcript {transcript}: {err.strerror or err}") from err
        loop = run_loop(self._config(stream_tokens), cid, messages, steps_done=steps_done, usage=usage,
                        sink=writer.write if writer is not None else None)
        try:
            async with contextlib.aclosing(loop) as events:  # stop the run before closing its tools
                async for event in events:
                    yield event
        finally:
            if writer is not None:
                writer.close()
            if owns_conversation:  # nobody can continue it: free its interpreter session and such
                await asyncio.shield(self.tools.close_conversation(cid))

    def stream(
        self, prompt: str, *, history: Sequence[Message] | None = None, conversation_id: str | None = None,
        transcript: str | Path | None = None,
    ) -> AsyncIterator[Event]:
        """Run on ``prompt`` and yield typed events as they happen, text deltas included.

        Args:
            prompt: The user's message.
            history: Earlier messages of the conversation.
            conversation_id: Keep stateful tools (the code interpreter) alive under this id across runs;
                the caller then ends it with `close_conversation`. ``None``: a fresh id, closed at the end.
            transcript: Append every event to this JSON Lines file as it happens (see `resume`).
        """
        return self._events(
            self._start(prompt, history), conversation_id=conversation_id, transcript=transcript,
            stream_tokens=True,
        )

    async def arun(
        self, prompt: str, *, history: Sequence[Message] | None = None, conversation_id: str | None = None,
        transcript: str | Path | None = None,
    ) -> RunResult:
        """Run on ``prompt`` until the model answers; see `stream` for the arguments."""
        events = self._events(
            self._start(prompt, history), conversation_id=conversation_id, transcript=transcript,
            stream_tokens=False,
        )
        return await _result_of(events)

    def run(
        self, prompt: str, *, history: Sequence[Message] | None = None, conversation_id: str | None = None,
        transcript: str | Path | None = None,
    ) -> RunResult:
        """Blocking `arun`, for scripts. Must not be called from inside a running event loop."""
        return asyncio.run(
            self.arun(prompt, history=history, conversation_id=conversation_id, transcript=transcript)
        )

    async def aresume(self, transcript: str | Path) -> RunResult:
        """Continue the run a transcript recorded, redoing nothing that finished.

        A finished run returns its recorded result. Otherwise tool calls that had no result are run,
        then the loop goes on; new events are appended to the same file.
        """
        state = load_transcript(transcript)
        if state.finished is not None:
            return state.finished
        events = self._events(
            state.messages, conversation_id=state.conversation_id, transcript=transcript,
            steps_done=state.steps_done, usage=state.usage, stream_tokens=False,
        )
        try:
            return await _result_of(events)
        finally:
            await asyncio.shield(self.tools.close_conversation(state.conversation_id))

    async def close_conversation(self, conversation_id: str) -> None:
        """End a conversation started with an explicit ``conversation_id``."""
        await self.tools.close_conversation(conversation_id)

    async def aclose(self) -> None:
        """Release every tool's resources (interpreter kernels, pools)."""
        await self.tools.aclose()


async def _result_of(events: AsyncIterator[Event]) -> RunResult:
    result: RunResult | None = None
    async for event in events:
        if isinstance(event, RunFinished):
            result = event.result
    if result is None:  # run_loop always ends with RunFinished unless it raised
        raise RuntimeError("the agent loop ended without a result")
    return result
