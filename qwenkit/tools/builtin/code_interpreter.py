"""`code_interpreter`: run Python in a sandboxed, stateful Jupyter kernel, one per conversation.

The model sends ``code`` (a fenced block is accepted too); the observation holds stdout, stderr, the
last value, a short traceback on errors, ``![fig-N](path)`` for each image, and notes on truncation,
timeouts and restarts. Kernels come from a `KernelPool` (isolated with bubblewrap by default) and are
killed when their conversation ends. They run on this machine (``kernels="local"``) or on a Jupyter
Kernel Gateway / Enterprise Gateway (``kernels="gateway:https://host:port"``), with the same results.

Errors: whatever the code does reaches the model as an observation. `qwenkit.errors.SandboxUnavailable`
(the machine cannot isolate kernels) and `qwenkit.errors.ConfigError` (a gateway that does not answer,
refuses the token, is not a gateway or has no sandboxed kernelspec) are raised, never turned into text:
the operator has to act, not the model.
"""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qwenkit import tracing
from qwenkit.sandbox.choice import KernelsSetting, make_provider
from qwenkit.sandbox.images import OutputsBudget
from qwenkit.sandbox.isolation import IsolationPolicy, PolicyName
from qwenkit.sandbox.limits import MiB, ResourceLimits
from qwenkit.sandbox.pool import KernelPool
from qwenkit.sandbox.provider import KernelProvider
from qwenkit.sandbox.session import KernelSession, SessionConfig
from qwenkit.tools.base import ModelRetry, Tool, ToolContext, ToolOutput
from qwenkit.types import ToolSpec

_CODE_LANGS = frozenset({"", "py", "python", "python3", "py3", "ipython"})
# A fence must start its line, so a ``` inside a string literal in plain code is left alone.
_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE
)

DESCRIPTION = (
    "Run Python code in a Jupyter kernel and see its output. State (variables, imports, files in the "
    "working directory) is kept between calls. matplotlib figures are returned as images. The sandbox "
    "has no network access; files outside the working directory are read-only or hidden."
)


def extract_code(text: str) -> str:
    """Return the code in ``text``: the bodies of its fenced blocks if it has any, else ``text``.

    Python-tagged or untagged fences are preferred; when there are only other fences their bodies
    are used. An unclosed fence (a reply cut short) runs to the end of the text.
    """
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    code = [body for lang, body in blocks if lang.lower() in _CODE_LANGS] or [body for _, body in blocks]
    return "\n".join(body.rstrip() for body in code) + "\n"


class CodeArgs(BaseModel):
    """Arguments of `code_interpreter`."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(description="The Python code to run.")


class CodeInterpreter(Tool):
    """The ``code_interpreter`` tool: one sandboxed kernel session per conversation.

    The tool applies its time limit itself (``handles_timeout``): `ToolContext.timeout` when the caller
    sets one, else ``timeout``. A cell past it is interrupted, the model is told "interrupted after N s",
    and the kernel keeps its state; only a cell that ignores the interrupt costs a kernel restart. Calls
    of one turn run in order (``sequential``), as they share the kernel's state.

    Args:
        timeout: Seconds each cell may run before it is interrupted (and the kernel restarted if it
            does not stop).
        pool: Kernel pool to take kernels from; by default one is made on first use and closed by
            `aclose`.
        pool_size: Warm kernels the default pool keeps ready.
        policy: Isolation policy of the default pool (``"bubblewrap"``; ``"unsandboxed"`` only if
            you trust the code).
        limits: Resource limits of the default pool's kernels.
        config: Per-cell limits (output cap, images, interrupt grace); ``timeout`` overrides its timeout.
        workdir_root: Directory under which each conversation's images are kept (one subdirectory
            per conversation, never removed). Default: temporary directories removed when the
            conversation ends.
        outputs_max_bytes: Size budget of ``workdir_root``: before an image is saved there, the oldest
            files under it are deleted until it fits (``None``: no budget).
        idle_timeout: Seconds a conversation's kernel may stay idle before it is killed.
        kernels: Where the default pool's kernels run: ``"local"`` (this machine, under ``policy``) or
            ``"gateway:http(s)://host:port"`` (a Jupyter Kernel Gateway / Enterprise Gateway; its
            kernelspec must be qwenkit's sandbox, see `qwenkit.sandbox.kernelspec`), or a provider.
        gateway_token: The gateway's auth token (default: the ``QWENKIT_GATEWAY_TOKEN`` environment
            variable).

    Raises:
        ConfigError: ``kernels`` is not a valid setting, or ``policy``/``limits`` were given for a gateway.

    Attributes:
        timeout: The default cell time limit (what the registry passes as `ToolContext.timeout`).
        timeout_margin: Seconds after the cell limit that a call may still take (interrupt grace,
            kernel restart or cold start); a caller's safety deadline should leave at least this much.
    """

    spec = ToolSpec(
        name="code_interpreter",
        human_name="Code Interpreter",
        description=DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    )
    args_model = CodeArgs
    handles_timeout = True
    sequential = True

    def __init__(
        self,
        *,
        timeout: float | None = None,
        pool: KernelPool | None = None,
        pool_size: int = 1,
        policy: IsolationPolicy | PolicyName | None = None,
        limits: ResourceLimits | None = None,
        config: SessionConfig | None = None,
        workdir_root: str | Path | None = None,
        outputs_max_bytes: int | None = 512 * MiB,
        idle_timeout: float | None = 600.0,
        kernels: str | KernelsSetting | KernelProvider = "local",
        gateway_token: str | None = None,
    ) -> None:
        config = config or SessionConfig()
        if timeout is not None:
            config = config.model_copy(update={"timeout": timeout})
        self.config = config
        self._pool = pool
        self._own_pool = pool is None
        # Made now, so a bad setting fails when the tool is built; a provider holds no connection yet.
        self.provider = make_provider(kernels, token=gateway_token, policy=policy, limits=limits)
        self._pool_args: dict[str, Any] = {
            "size": pool_size, "config": config, "idle_timeout": idle_timeout, "factory": self.provider,
        }
        self.workdir_root = Path(workdir_root) if workdir_root is not None else None
        self.outputs_budget = (
            OutputsBudget(self.workdir_root, outputs_max_bytes)
            if self.workdir_root is not None and outputs_max_bytes is not None else None
        )
        self._sessions: dict[str, KernelSession] = {}
        # Own pools ended by `kill_now` while kernels were still starting: `aclose` waits for those.
        self._killed_pools: list[KernelPool] = []
        self._lock = asyncio.Lock()
        self.timeout = config.timeout
        # Interrupt grace, a kernel restart or a cold start can follow the cell limit: a safety
        # deadline must not cut the interpreter's own (more informative) timeout handling short.
        self.timeout_margin = config.interrupt_grace + 60.0

    async def _pool_for_use(self) -> KernelPool:
        if self._pool is None:
            pool = KernelPool(**self._pool_args)
            # Raises SandboxUnavailable or ConfigError (a gateway that cannot be used), which end the run:
            # the model cannot make the machine isolate code or a gateway answer.
            await pool.start(wait=False)
            self._pool = pool
        return self._pool

    async def session(self, conversation_id: str) -> KernelSession:
        """The conversation's session, made on first use."""
        async with self._lock:
            session = self._sessions.get(conversation_id)
            if session is None or session.closed:
                pool = await self._pool_for_use()
                workdir = None
                if self.workdir_root is not None:
                    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", conversation_id)[:100] or "conversation"
                    workdir = self.workdir_root / safe
                session = pool.session(self.config, workdir=workdir, outputs_budget=self.outputs_budget)
                self._sessions[conversation_id] = session
            return session

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        code = extract_code(str(args.get("code", "")))
        if not code.strip():
            raise ModelRetry("the code is empty; send the Python code to run in the `code` argument")
        session = await self.session(ctx.conversation_id)
        # The caller's limit for this call, else the tool's own; the session interrupts the cell at it.
        # A cell always has a finite limit: a kernel busy forever would hold its conversation forever.
        wanted = ctx.timeout
        limit = wanted if wanted is not None and 0 < wanted < math.inf else self.config.timeout
        with tracing.sandbox_span(ctx.conversation_id) as span:
            result = await session.execute(code, timeout=limit)
            if span.is_recording():
                span.set_attribute("qwenkit.sandbox.duration_s", result.duration_s)
                span.set_attribute("qwenkit.sandbox.timed_out", result.timed_out)
                span.set_attribute("qwenkit.sandbox.ok", result.ok)
        return ToolOutput(
            text=result.to_observation(), images=list(result.images), data=result.model_dump(),
            is_error=not result.ok,
        )

    async def close_conversation(self, conversation_id: str) -> None:
        """Kill the conversation's kernel and remove its temporary files."""
        async with self._lock:
            session = self._sessions.pop(conversation_id, None)
        if session is not None:
            await session.close()

    async def aclose(self) -> None:
        """Kill every kernel this tool started (and its pool, if it made one)."""
        async with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        pools, self._killed_pools = self._killed_pools, []
        if self._pool is not None and self._own_pool:
            pools.append(self._pool)
            self._pool = None
        await asyncio.gather(*(p.aclose() for p in pools), return_exceptions=True)

    def close_now(self) -> bool:
        """`kill_now` for `Tool.close_now`: whether any kernel was still held."""
        held = bool(self._sessions) or (self._pool is not None and self._own_pool)
        self.kill_now()
        return held

    def kill_now(self) -> None:
        """Kill every kernel of this tool at once, without an event loop (for an `Agent`'s finaliser).

        Synchronous and idempotent: SIGKILLs the kernels of all conversations and, if the tool made its
        own pool, the pool's warm kernels (see `KernelPool.kill_now`). The tool can still be used
        afterwards: new conversations get new sessions (and a new pool).
        """
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.kill_now()
        if self._pool is not None and self._own_pool:
            pool, self._pool = self._pool, None
            pool.kill_now()
            self._killed_pools.append(pool)  # a kernel it was starting ends when `aclose` awaits it
