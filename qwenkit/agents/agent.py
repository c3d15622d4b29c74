"""`Agent`: the public entry point that wires a model, a prompt format and tools to the loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import threading
import uuid
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic

from qwenkit.agents.as_tool import AgentTool
from qwenkit.agents.config import FINAL_ANSWER_PROMPT, LoopConfig
from qwenkit.agents.conversation import unanswered_calls
from qwenkit.agents.events import RESUMABLE_STATUSES, ApprovalDecision, Event, RunFinished, RunResult
from qwenkit.agents.limits import UsageLimits
from qwenkit.agents.loop import run_loop
from qwenkit.agents.output import OutputSpec, OutputValidator
from qwenkit.agents.transcript import TranscriptWriter, load_transcript
from qwenkit.errors import ConfigError
from qwenkit.llm.autoformat import FormatChoice, choose_format
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats import get_format
from qwenkit.llm.formats.base import PromptFormat
from qwenkit.llm.template_info import DescribesTemplate
from qwenkit.tools.base import DepsT, Tool, Toolset
from qwenkit.tools.registry import ToolRegistry
from qwenkit.types import Message, SystemMessage, ToolCall, Usage, UserMessage


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
        tools: A `ToolRegistry`, or tools to put in a new one; toolsets among them (MCP servers) are started
            on the first run and their tools added, and closed by `aclose`.
        format: The prompt format: a `PromptFormat`, a format name (``nous``, ``qwen``, ``react``,
            ``native``...), or ``auto`` (the default): chosen on the first run from what the model's own chat
            template does (see `qwenkit.llm.autoformat`), ``nous`` when no template is visible.
        system: System prompt put before each new conversation (``None``: none).
        max_steps: Most model calls in one run.
        sampling: Sampling settings (temperature 0 and seed 0 by default).
        tool_choice: ``auto``, ``required``, ``none`` or a tool name. The native format sends it to the
            server; text formats honour it in the prompt (a forced call is prefilled, ``none`` drops the
            tools); a choice a format cannot honour is a `ConfigError`, never ignored.
        tool_timeout: Seconds allowed per tool call, overriding each tool's own timeout.
        final_answer_at_max_steps: When the steps run out, ask the model once more, without tools, for its
            best answer (the status stays ``max_steps``), as smolagents does. Small models that keep calling
            tools still end with an answer.
        deps: The application's own object handed to every tool as ``ctx.deps`` (see `ToolContext`); a run
            may override it with ``deps=``.
        name: The agent's name, shown to tools as ``ctx.agent_name`` and in warnings.
        output_type: The type the final answer must have (a pydantic model, a dataclass, a TypedDict,
            ``list[...]``, ``int``...); ``result.output`` then holds it. The model is shown its JSON schema, and
            an answer that fails validation goes back to it with the errors. ``None``: plain text.
        output_validator: Extra checks on the typed output; raise `ModelRetry` (or ``ValueError``) to send
            the model back with a message.
        output_retries: How often an invalid answer is sent back before the run ends ``output_invalid``.
        limits: `UsageLimits` every run must stay within (a run may override them with ``limits=``).
        repeated_call_guard: A call identical to one of the turn before (same name and arguments) is not run
            again; the model is shown the earlier result and asked to answer. Small models otherwise repeat a
            call they already have the result of until the steps run out. Benchmarks that must reproduce another
            harness (BFCL) turn it off.
        retry_empty_answer: An empty final reply is asked for once more; otherwise the run ends
            ``empty_answer`` at once.
        thinking: Qwen3's thinking switch (``enable_thinking`` in its chat template) for every request:
            ``True``/``False``, or ``None`` for the template's default.
        max_input_tokens: The model's context window in tokens; a conversation that would not fit (leaving
            room for the reply's ``max_tokens``) has old observations shortened, then old turns dropped, and
            a `ContextTrimmed` event says what. ``None``: taken from the model where it is known (the GGUF's
            context length, vLLM's ``max_model_len``), else no check.

    Raises:
        ConfigError: ``output_type`` is not a type pydantic can describe with a JSON schema.
        ValueError: ``max_steps`` below 1, a nonsense ``tool_timeout`` or a negative ``output_retries``.
    """

    def __init__(
        self,
        model: ChatModel,
        tools: ToolRegistry | Iterable[Tool | Toolset] = (),
        format: PromptFormat | str = "auto",
        system: str | None = None,
        max_steps: int = 8,
        sampling: Sampling | None = None,
        tool_choice: str | None = None,
        tool_timeout: float | None = None,
        final_answer_at_max_steps: bool = True,
        deps: DepsT = None,  # type: ignore[assignment]  # no deps: None, whatever DepsT says
        name: str = "agent",
        output_type: Any = None,
        output_validator: OutputValidator | None = None,
        output_retries: int = 2,
        limits: UsageLimits | None = None,
        repeated_call_guard: bool = True,
        retry_empty_answer: bool = True,
        thinking: bool | None = None,
        max_input_tokens: int | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if output_retries < 0:
            raise ValueError("output_retries must be 0 or more")
        if tool_timeout is not None and not (tool_timeout > 0 and math.isfinite(tool_timeout)):
            raise ValueError(f"tool_timeout must be a positive number of seconds, not {tool_timeout!r}")
        self.model = model
        if isinstance(tools, ToolRegistry):
            self.tools, self._toolsets = tools, []
        else:
            given = list(tools)
            self.tools = ToolRegistry(t for t in given if isinstance(t, Tool))
            self._toolsets: list[Toolset] = [t for t in given if not isinstance(t, Tool)]
            if bad := [t for t in self._toolsets if not isinstance(t, Toolset)]:
                raise TypeError(f"not a tool or a toolset: {bad[0]!r}")
        self._toolsets_loaded = not self._toolsets
        auto = isinstance(format, str) and format.strip().lower() == "auto"
        self.format: PromptFormat | None = None if auto else get_format(format) if isinstance(format, str) else format
        self.format_choice: FormatChoice | None = None if auto else FormatChoice(
            self.format.name if self.format is not None else "", "chosen by the caller")
        self.system = system
        self.max_steps = max_steps
        self.sampling = sampling or Sampling()
        self.tool_choice = tool_choice
        if self.format is not None:
            _check_tool_choice(self.format, tool_choice)
        self.tool_timeout = tool_timeout
        self.final_answer_at_max_steps = final_answer_at_max_steps
        self.deps = deps
        self.name = name
        self.output = OutputSpec(output_type, output_validator) if output_type is not None else None
        self.output_retries = output_retries
        self.limits = limits
        self.repeated_call_guard = repeated_call_guard
        self.retry_empty_answer = retry_empty_answer
        self.thinking = thinking
        if max_input_tokens is not None and max_input_tokens < 1:
            raise ValueError("max_input_tokens must be at least 1")
        self.max_input_tokens = max_input_tokens
        self._window_checked = False
        # Event loops for the blocking `run`, one per calling thread, reused so that repeated runs keep their
        # tools' loop-bound state (kernels) and their thread pool instead of building both anew each time.
        self._runners: dict[int, asyncio.Runner] = {}
        self._runners_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _release_dropped, self.tools, self._runners, name)

    # ----------------------------------------------------------------------------------------------- running

    async def resolve_format(self) -> PromptFormat:
        """The prompt format runs use; with ``format="auto"`` it is chosen now, once, from the model's template.

        `format_choice` then says which format and why.

        Raises:
            ConfigError: The model's chat template is visible but cannot be rendered.
        """
        if self.format is None or (self.max_input_tokens is None and not self._window_checked):
            self._window_checked = True
            info = await self.model.template_info() if isinstance(self.model, DescribesTemplate) else None
            if self.max_input_tokens is None and info is not None:
                self.max_input_tokens = info.max_input_tokens
            if self.thinking is not None and info is not None and info.thinking is False:
                warnings.warn(f"thinking={self.thinking} has no effect: the chat template from {info.source} has "
                              "no enable_thinking switch", UserWarning, stacklevel=2)
            if self.format is None:
                choice = choose_format(info)
                fmt = get_format(choice.name)
                _check_tool_choice(fmt, self.tool_choice)
                self.format, self.format_choice = fmt, choice
        return self.format

    async def _load_toolsets(self) -> None:
        """Start the toolsets (MCP servers) and register their tools, once; a name clash is a `ConfigError`."""
        for toolset in self._toolsets:
            for t in await toolset.tools():
                if t.name in self.tools:
                    raise ConfigError(f"two tools are named {t.name!r} (one from {toolset!r}); give the toolset "
                                      "a prefix to keep names unique")
                self.tools.add(t)
        self._toolsets_loaded = True

    def _config(self, stream_tokens: bool, deps: Any, limits: UsageLimits | None = None,
                decisions: Mapping[str, bool | str] | None = None) -> LoopConfig:
        assert self.format is not None, "resolve_format() runs before every run"
        return LoopConfig(
            model=self.model, fmt=self.format, tools=self.tools, sampling=self.sampling,
            max_steps=self.max_steps, tool_choice=self.tool_choice, stream_tokens=stream_tokens,
            tool_timeout=self.tool_timeout,
            final_answer_prompt=FINAL_ANSWER_PROMPT if self.final_answer_at_max_steps else "",
            deps=self.deps if deps is None else deps, agent_name=self.name,
            limits=limits if limits is not None else self.limits, output=self.output,
            output_retries=self.output_retries, decisions=dict(decisions or {}),
            repeated_call_guard=self.repeated_call_guard, retry_empty_answer=self.retry_empty_answer,
            thinking=self.thinking,
            max_input_tokens=self.max_input_tokens,
        )

    def _start(self, prompt: str, history: Sequence[Message] | None) -> list[Message]:
        msgs: list[Message] = list(history or [])
        system = self.system
        if self.output is not None:  # the schema goes where the model reads its standing instructions
            system = f"{system}\n\n{self.output.instruction()}" if system else self.output.instruction()
        if system is not None and not any(isinstance(m, SystemMessage) for m in msgs):
            msgs.insert(0, SystemMessage(content=system))
        msgs.append(UserMessage(content=prompt))
        return msgs

    async def _events(
        self, messages: Sequence[Message], *, conversation_id: str | None, writer: TranscriptWriter | None,
        deps: Any, steps_done: int = 0, tool_calls_done: int = 0, usage: Usage | None = None,
        stream_tokens: bool, resumed: bool = False, limits: UsageLimits | None = None,
        decisions: Mapping[str, bool | str] | None = None,
    ) -> AsyncGenerator[Event, None]:
        owns_conversation = conversation_id is None
        cid = conversation_id or uuid.uuid4().hex
        try:
            if not self._toolsets_loaded:
                await self._load_toolsets()
            await self.resolve_format()
        except BaseException:
            if writer is not None:
                writer.close()
            raise
        loop = run_loop(self._config(stream_tokens, deps, limits, decisions), cid, messages, steps_done=steps_done,
                        tool_calls_done=tool_calls_done, usage=usage,
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
        transcript: str | Path | None = None, deps: DepsT | None = None, limits: UsageLimits | None = None,
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
            limits: Overrides the agent's ``limits`` for this run.

        Raises:
            TranscriptError: The transcript cannot be written (raised when iteration starts).
            SandboxUnavailable: A tool needs a sandbox this machine cannot give.
        """
        messages = self._start(prompt, history)

        async def events() -> AsyncIterator[Event]:
            writer = TranscriptWriter(transcript) if transcript is not None else None
            inner = self._events(messages, conversation_id=conversation_id, writer=writer, deps=deps,
                                 stream_tokens=True, limits=limits)
            async with contextlib.aclosing(inner) as run:  # closing this generator stops the run at once
                async for event in run:
                    yield event

        return events()

    async def arun(
        self, prompt: str, *, history: Sequence[Message] | None = None, conversation_id: str | None = None,
        transcript: str | Path | None = None, deps: DepsT | None = None, limits: UsageLimits | None = None,
    ) -> RunResult:
        """Run on ``prompt`` until the model answers; see `stream` for the arguments."""
        writer = TranscriptWriter(transcript) if transcript is not None else None
        events = self._events(self._start(prompt, history), conversation_id=conversation_id, writer=writer,
                              deps=deps, stream_tokens=False, limits=limits)
        return await _result_of(events)

    def run(
        self, prompt: str, *, history: Sequence[Message] | None = None, conversation_id: str | None = None,
        transcript: str | Path | None = None, deps: DepsT | None = None, limits: UsageLimits | None = None,
    ) -> RunResult:
        """Blocking `arun`, for scripts. Must not be called from inside a running event loop."""
        return self._runner().run(self.arun(prompt, history=history, conversation_id=conversation_id,
                                            transcript=transcript, deps=deps, limits=limits))

    async def aresume(
        self, transcript: str | Path | RunResult, *, approvals: Mapping[str, bool | str] | None = None,
        limits: UsageLimits | None = None, deps: DepsT | None = None,
    ) -> RunResult:
        """Continue a run that stopped: from its transcript (even in a new process), or from its result.

        Redoes nothing that finished. A finished run returns its result. Otherwise calls that had no result
        run (approved ones; denied ones reach the model as a denial), then the loop goes on. With a
        transcript, the file is locked first and read under the lock, so two processes resuming it cannot both
        run its pending calls (the second gets `TranscriptLocked`); the decisions and every new event are
        appended to it, never the history again.

        Args:
            transcript: The run's JSON Lines transcript, or the `RunResult` it returned.
            approvals: Decisions on the calls waiting for approval, by call id: ``True`` runs the call,
                ``False`` or a reason (a string) denies it.
            limits: New `UsageLimits` (e.g. larger ones after status ``limit``).
            deps: Overrides the agent's ``deps``.

        Raises:
            ConfigError: ``approvals`` names a call that is not waiting for a decision (the message lists
                the pending ids).
            TranscriptLocked: Another process is running or resuming this transcript.
            TranscriptError: The file is not a qwenkit transcript, or is corrupt before its last line.
        """
        return await _result_of(self._resume(transcript, approvals, limits, deps, stream_tokens=False))

    def stream_resume(
        self, transcript: str | Path | RunResult, *, approvals: Mapping[str, bool | str] | None = None,
        limits: UsageLimits | None = None, deps: DepsT | None = None,
    ) -> AsyncIterator[Event]:
        """`aresume` as a stream of the resumed run's events, text deltas included (a finished run yields
        only its `RunFinished`). Errors are raised when iteration starts."""
        return self._resume(transcript, approvals, limits, deps, stream_tokens=True)

    async def _resume(
        self, transcript: str | Path | RunResult, approvals: Mapping[str, bool | str] | None,
        limits: UsageLimits | None, deps: Any, *, stream_tokens: bool,
    ) -> AsyncGenerator[Event, None]:
        writer: TranscriptWriter | None = None
        if isinstance(transcript, RunResult):
            if transcript.status not in RESUMABLE_STATUSES:
                yield RunFinished(result=transcript)
                return
            messages, cid = transcript.messages, transcript.conversation_id
            steps, tool_calls, usage = transcript.steps, transcript.tool_calls, transcript.usage
            decisions = _checked(approvals or {}, unanswered_calls(messages))
        else:
            writer = TranscriptWriter(transcript)
            try:
                state = load_transcript(transcript)
                if state.finished is not None:
                    writer.close()
                    yield RunFinished(result=await self._typed(state.finished))
                    return
                messages, cid = state.messages, state.conversation_id
                steps, tool_calls, usage = state.steps_done, state.tool_calls_done, state.usage
                decisions = {**state.decisions, **_checked(approvals or {}, unanswered_calls(messages))}
                for call_id, decision in (approvals or {}).items():
                    writer.write(ApprovalDecision(call_id=call_id, approved=decision is True,
                                                  reason=decision if isinstance(decision, str) else ""))
            except BaseException:
                writer.close()
                raise
        inner = self._events(
            messages, conversation_id=cid, writer=writer, deps=deps, steps_done=steps, tool_calls_done=tool_calls,
            usage=usage, stream_tokens=stream_tokens, resumed=True, limits=limits, decisions=decisions,
        )
        try:
            async with contextlib.aclosing(inner) as run:
                async for event in run:
                    yield event
        finally:
            if writer is not None:  # a transcript's run cannot be continued in memory: free its tools
                await asyncio.shield(self.tools.close_conversation(cid))

    async def _typed(self, finished: RunResult) -> RunResult:
        """A finished result read back from a transcript holds JSON; give it the agent's output type again."""
        if self.output is None or finished.status != "completed":
            return finished
        output, _ = await self.output.parse(finished.answer)
        return finished.model_copy(update={"output": output})

    def resume(
        self, transcript: str | Path | RunResult, *, approvals: Mapping[str, bool | str] | None = None,
        limits: UsageLimits | None = None, deps: DepsT | None = None,
    ) -> RunResult:
        """Blocking `aresume`, for scripts."""
        return self._runner().run(self.aresume(transcript, approvals=approvals, limits=limits, deps=deps))

    def as_tool(self, name: str, description: str) -> AgentTool:
        """This agent as a tool another agent can call: the inner answer is the observation.

        Args:
            name: The tool name the calling model writes.
            description: What this agent is good for, for the calling model.
        """
        return AgentTool(self, name, description)

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
        for toolset in self._toolsets:
            await toolset.aclose()
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


def _check_tool_choice(fmt: PromptFormat, choice: str | None) -> None:
    """A ``tool_choice`` the format has no way to honour is a `ConfigError` (values are checked at render)."""
    if choice is not None and "tool_choice" not in inspect.signature(fmt.render).parameters:
        raise ConfigError(f"the {fmt.name} prompt format cannot honour tool_choice={choice!r}")


def _checked(approvals: Mapping[str, bool | str], pending: Sequence[ToolCall]) -> dict[str, bool | str]:
    """``approvals`` if each names a pending call; else a `ConfigError` listing the pending ids."""
    ids = {c.id for c in pending}
    if unknown := sorted(set(approvals) - ids):
        listed = ", ".join(f"{c.id} ({c.name})" for c in pending) or "none"
        raise ConfigError(f"approvals for unknown call ids {', '.join(unknown)}; the calls waiting are: {listed}")
    for call_id, decision in approvals.items():
        if not isinstance(decision, bool | str):
            raise ConfigError(f"the decision for {call_id} must be True, False or a reason, not {decision!r}")
    return dict(approvals)


async def _result_of(events: AsyncIterator[Event]) -> RunResult:
    result: RunResult | None = None
    async for event in events:
        if isinstance(event, RunFinished):
            result = event.result
    if result is None:  # run_loop always ends with RunFinished unless it raised
        raise RuntimeError("the agent loop ended without a result")
    return result
