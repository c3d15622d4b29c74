"""`code_interpreter`: run Python in a sandboxed, stateful Jupyter kernel, one per conversation.

The model sends ``code`` (a fenced block is accepted too); the observation holds stdout, stderr, the
last value, a short traceback on errors, ``![fig-N](path)`` for each image, and notes on truncation,
timeouts and restarts. Kernels come from a `KernelPool` (isolated with bubblewrap by default) and are
killed when their conversation ends.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.sandbox.isolation import IsolationPolicy, PolicyName
from qwenkit.sandbox.limits import ResourceLimits
from qwenkit.sandbox.pool import KernelPool
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
        idle_timeout: Seconds a conversation's kernel may stay idle before it is killed.
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
        idle_timeout: float | None = 600.0,
    ) -> None:
        config = config or SessionConfig()
        if timeout is not None:
            config = config.model_copy(update={"timeout": timeout})
        self.config = config
        self._pool = pool
        self._own_pool = pool is None
        self._pool_args: dict[str, Any] = {
            "size": pool_size, "policy": policy, "limits": limits, "config": config, "idle_timeout": idle_timeout,
        }
        self.workdir_root = Path(workdir_root) if workdir_root is not None else None
        self._sessions: dict[str, KernelSession] = {}
        self._lock = asyncio.Lock()
        # Backstop for the registry's own timeout: the cell limit plus time to interrupt, restart and
        # start a kernel, so the interpreter's own (more informative) timeout handling comes first.
        self.timeout = config.timeout + config.interrupt_grace + 60.0

    async def _pool_for_use(self) -> KernelPool:
        if self._pool is None:
            pool = KernelPool(**self._pool_args)
            await pool.start(wait=False)  # raises SandboxUnavailable, which the model is shown
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
                session = pool.session(self.config, workdir=workdir)
                self._sessions[conversation_id] = session
            return session

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        code = extract_code(str(args.get("code", "")))
        if not code.strip():
            raise ModelRetry("the code is empty; send the Python code to run in the `code` argument")
        session = await self.session(ctx.conversation_id)
        # A per-call limit, where the caller's context carries one, is honoured over the tool's own.
        call_timeout = getattr(ctx, "timeout", None)
        result = await session.execute(code, timeout=call_timeout if isinstance(call_timeout, int | float) else None)
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
        if self._pool is not None and self._own_pool:
            pool, self._pool = self._pool, None
            await pool.aclose()
