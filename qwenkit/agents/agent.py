"""`Agent`: the public entry point that wires a model, a prompt format and tools to the loop."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import uuid
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic

from qwenkit.agents.config import FINAL_ANSWER_PROMPT, LoopConfig
from qwenkit.agents.events import Event, RunFinished, RunResult
from qwenkit.agents.loop import run_loop
from qwenkit.agents.transcript import TranscriptWriter, load_transcript
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats import get_format
from qwenkit.llm.formats.base import PromptFormat
from qwenkit.tools.base import DepsT, Tool
from qwenkit.tools.registry import ToolRegistry
from qwenkit.types import Message, SystemMessage, Usage, UserMessage


class Agent(Generic[DepsT]):
    """A tool-using agent over a Qwen chat model.

    The agent holds configuration only, so one instance may serve many conversations at once. Use it as
    ``async with Agent(...) as agent:`` (or call `aclose`) to release the model's connection and the tools'
    kernels; an agent dropped while its tools still hold kernels kills them and warns, naming the agent.

    Example:
        >>> agent = Agent(model, tools=[get_weather], format="qwen")
        >>> agent.run("Weather in Paris?").answer

    Args:
        model: Any `ChatModel` (``OpenAICompatible``, the embedded backend, or a test model).
        tools: A `ToolRegistry`, or tools to put in a new one.
        format: The prompt format: a `PromptFormat` or one of ``react``, ``qwen``, ``nous``, ``native``.
        system: System prompt put before each new conversation (``None``: none).
        max_steps: Most model calls in one run.
        sampling: Sampling settings (temperature 0 and seed 0 by default).
        tool_choice: ``auto``, ``required``, ``none`` or a tool name; only for the native format.
        tool_timeout: Seconds allowed per tool call, overriding each tool's own timeout.
        final_answer_at_max_steps: When the steps run out, ask the model once more, without tools, for its
            best answer (the status stays ``max_steps``), as smolagents does. Small models that keep calling
            tools still end with an answer.
        deps: The application's own object handed to every tool as ``ctx.deps`` (see `ToolContext`); a run
            may override it with ``deps=``.
        name: The agent's name, shown to tools as ``ctx.agent_name`` and in warnings.
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
        final_answer_at_max_steps: bool = True,
        deps: DepsT = None,  # type: ignore[assignment]  # no deps: None, whatever DepsT says
        name: str = "agent",
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if tool_timeout is not None and not (tool_timeout > 0 and math.isfinite(tool_timeout)):
            raise ValueError(f"tool_timeout must be a positive number of seconds, not {tool_timeout!r}")
        self.model = model
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.format = get_format(format) if isinstance(format, str) else format
        self.system = system
        self.max_steps = max_steps
        self.sampling = sampling or Sampling()
        self.tool_choice = tool_choice
        self.tool_timeout = tool_timeout
        self.final_answer_at_max_steps = final_answer_at_max_steps
        self.deps = deps
        self.name = name
        # Event loops for the blocking `run`, one per calling thread, reused so that repeated runs keep their
        # tools' loop-bound state (kernels) and their thread pool instead of building both anew each time.
        self._runners: dict[int, asyncio.Runner] = {}
        self._runners_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _release_dropped, self.tools, self._runners, name)

    # ----------------------------------------------------------------------------------------------- running

    def _config(self, stream_tokens: bool, deps: Any) -> LoopConfig:
        return LoopConfig(
            model=self.model, fmt=self.format, tools=self.tools, sampling=self.sampling,
            max_steps=self.max_steps, tool_choice=self.tool_choice, stream_tokens=stream_tokens,
            tool_timeout=self.tool_timeout,
            final_answer_prompt=FINAL_ANSWER_PROMPT if self.final_answer_at_max_steps else "",
            deps=self.deps if deps is None else deps, agent_name=self.name,
        )

    def _start(self, prompt: str, history: Sequence[Message] | None) -> list[Message]:
        msgs: list[Message] = list(history or [])
        if self.system is not None and not any(isinstance(m, SystemMessage) for m in msgs):
            msgs.insert(0, SystemMessage(content=self.system))
        msgs.append(UserMessage(content=prompt))
        return msgs

    async def _events(
        self, messages: Sequence[Message], *, conversation_id: str | None, writer: TranscriptWriter | None,
        deps: Any, steps_done: int = 0, usage: Usage | None = None, stream_tokens: bool, resumed: bool = False,
    ) -> AsyncGenerator[Event, None]:
        owns_conversation = conversation_id is None
        cid = conversation_id or uuid.uuid4().hex
        loop = run_loop(self._config(stream_tokens, deps), cid, messages, steps_done=steps_done, usage=usage,
                        sink=writer.write if writer is not None else None, resumed=resumed)
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
        transcript: str | Path | None = None, deps: DepsT | None = None,
    ) -> AsyncIterator[Event]:
        """Run on ``prompt`` and yield typed events as they happen, text deltas included.

        Args:
            prompt: The user's message.
            history: Earlier messages of the conversation.
            conversation_id: Keep stateful tools (the code interpreter) alive under this id across runs;
                the caller then ends it with `close_conversation`. ``None``: a fresh id, closed at the end.
            transcript: Append every event to this JSON Lines file as it happens (see `resume`). The file is
                locked for the run: a second run on it raises `TranscriptLocked`.
            deps: Overrides the agent's ``deps`` for this run.

        Raises:
            TranscriptError: The transcript cannot be written (raised when iteration starts).
            SandboxUnavailable: A tool needs a sandbox this machine cannot give.
        """
        messages = self._start(prompt, history)

        async def events() -> AsyncIterator[Event]:
            writer = TranscriptWriter(transcript) if transcript is not None else None
            inner = self._events(messages, conversation_id=conversation_id, writer=writer, deps=deps,
                                 stream_tokens=True)
            async with contextlib.aclosing(inner) as run:  # closing this generator stops the run at once
                async for event in run:
                    yield event

        return events()

    async def arun(
        self, prompt: str, *, history: Sequence[Message] | None = None, conversation_id: str | None = None,
        transcript: str | Path | None = None, deps: DepsT | None = None,
    ) -> RunResult:
        """Run on ``prompt`` until the model answers; see `stream` for the arguments."""
        writer = TranscriptWriter(transcript) if transcript is not None else None
        events = self._events(self._start(prompt, history), conversation_id=conversation_id, writer=writer,
                              deps=deps, stream_tokens=False)
        return await _result_of(events)

    def run(
        self, prompt: str, *, history: Sequence[Message] | None = None, conversation_id: str | None = None,
        transcript: str | Path | None = None, deps: DepsT | None = None,
    ) -> RunResult:
        """Blocking `arun`, for scripts. Must not be called from inside a running event loop."""
        return self._runner().run(
            self.arun(prompt, history=history, conversation_id=conversation_id, transcript=transcript, deps=deps)
        )

    async def aresume(self, transcript: str | Path, *, deps: DepsT | None = None) -> RunResult:
        """Continue the run a transcript recorded, redoing nothing that finished.

        The transcript is locked first and read under the lock, so two processes resuming the same file
        cannot both run its pending calls: the second gets `TranscriptLocked`. A finished run returns its
        recorded result. Otherwise tool calls that had no result are run, then the loop goes on; only new
        events are appended to the file.

        Raises:
            TranscriptLocked: Another process is running or resuming this transcript.
            TranscriptError: The file is not a qwenkit transcript, or is corrupt before its last line.
        """
        writer = TranscriptWriter(transcript)
        try:
            state = load_transcript(transcript)
        except BaseException:
            writer.close()
            raise
        if state.finished is not None:
            writer.close()
            return state.finished
        events = self._events(
            state.messages, conversation_id=state.conversation_id, writer=writer, deps=deps,
            steps_done=state.steps_done, usage=state.usage, stream_tokens=False, resumed=True,
        )
        try:
            return await _result_of(events)
        finally:
            await asyncio.shield(self.tools.close_conversation(state.conversation_id))

    def resume(self, transcript: str | Path, *, deps: DepsT | None = None) -> RunResult:
        """Blocking `aresume`, for scripts."""
        return self._runner().run(self.aresume(transcript, deps=deps))

    # --------------------------------------------------------------------------------------------- lifecycle

    def _runner(self) -> asyncio.Runner:
        with self._runners_lock:
            runner = self._runners.get(threading.get_ident())
            if runner is None:
                runner = self._runners[threading.get_ident()] = asyncio.Runner()
        return runner

    async def close_conversation(self, conversation_id: str) -> None:
        """End a conversation started with an explicit ``conversation_id``."""
        await self.tools.close_conversation(conversation_id)

    async def aclose(self) -> None:
        """Release every tool's resources (interpreter kernels, pools) and the model's connection."""
        await self.tools.aclose()
        aclose = getattr(self.model, "aclose", None)  # a user's own ChatModel may predate aclose()
        if aclose is not None:
            await aclose()

    def close(self) -> None:
        """Blocking `aclose`, for scripts that used `run`; also closes the event loops `run` kept."""
        self._runner().run(self.aclose())
        self._finalizer.detach()
        _close_runners(self._runners)

    async def __aenter__(self) -> Agent[DepsT]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
        self._finalizer.detach()
        _close_runners(self._runners)


def _close_runners(runners: dict[int, asyncio.Runner]) -> None:
    for runner in list(runners.values()):
        with contextlib.suppress(RuntimeError):  # a loop still running in another thread is left to it
            runner.close()
    runners.clear()


def _release_dropped(tools: ToolRegistry, runners: dict[int, asyncio.Runner], name: str) -> None:
    """Finaliser of an agent dropped without `aclose`: kill what its tools still hold, and say so."""
    if tools.close_now():
        warnings.warn(f"Agent {name!r} was dropped without aclose(); its tools' kernels were killed",
                      ResourceWarning, stacklevel=1)
    _close_runners(runners)


async def _result_of(events: AsyncIterator[Event]) -> RunResult:
    result: RunResult | None = None
    async for event in events:
        if isinstance(event, RunFinished):
            result = event.result
    if result is None:  # run_loop always ends with RunFinished unless it raised
        raise RuntimeError("the agent loop ended without a result")
    return result
