"""`QwenkitCodeInterpreter`: qwenkit's sandboxed code interpreter as a Qwen-Agent tool.

Imported only through `qwenkit.integrations.qwen_agent` (which explains a missing Qwen-Agent); this module
imports Qwen-Agent at its top. It registers nothing in Qwen-Agent's ``TOOL_REGISTRY``: pass an instance in
``function_list``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import json5
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from qwen_agent.tools.base import BaseTool, ToolServiceError
from qwen_agent.utils.utils import has_chinese_chars

from qwenkit._untrusted import clean_text
from qwenkit.errors import ConfigError, SessionClosed
from qwenkit.integrations._loop_thread import LoopThread, LoopTimeout
from qwenkit.sandbox.isolation import PolicyName
from qwenkit.tools.base import ModelRetry, Tool, ToolContext, ToolOutput
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
from qwenkit.tools.registry import OPERATOR_ERRORS, SAFETY_MARGIN_S
from qwenkit.types import new_call_id

_JSON5_MAX_CHARS = 100_000
"""Longest argument text parsed as JSON5 when it is not JSON (JSON5's parser is slow on large input)."""

_CLOSE_S = 30.0
"""Seconds `close` waits for the kernels to shut down cleanly before killing them."""


class QwenkitCodeInterpreterConfig(BaseModel):
    """The ``cfg`` dict a `QwenkitCodeInterpreter` accepts (Qwen-Agent passes tool settings as a dict).

    Keys Qwen-Agent itself puts there (``name``, ``name_for_human``, ``args_format``) are allowed and others
    are ignored, as Qwen-Agent's own tools do.

    Attributes:
        timeout: Seconds each cell may run before it is interrupted (default: qwenkit's cell limit). A call's
            own ``timeout=`` keyword (Qwen-Agent's code interpreter takes one) wins.
        policy: ``"bubblewrap"`` (default) or ``"unsandboxed"`` (only for code you trust).
        pool_size: Warm kernels kept ready for new sessions. Default 0: a tool usually serves one session,
            whose kernel starts on its first call; a spare kernel would only hold memory.
        work_dir: Directory under which each session's images are kept (Qwen-Agent's key). Default: temporary
            directories removed when the session ends or the tool closes.
        static_url: URL under which ``work_dir`` is served (Qwen-Agent's ``M6_CODE_INTERPRETER_STATIC_URL``):
            image links then point there instead of at local paths.
        idle_timeout: Seconds a session's kernel may stay idle before it is killed (its state is then lost).
    """

    model_config = ConfigDict(extra="ignore")

    timeout: float | None = Field(default=None, gt=0)
    policy: PolicyName | None = None
    pool_size: int = Field(default=0, ge=0)
    work_dir: str | None = None
    static_url: str | None = None
    idle_timeout: float | None = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _static_url_needs_work_dir(self) -> QwenkitCodeInterpreterConfig:
        if self.static_url and not self.work_dir:
            raise ValueError("static_url needs work_dir: only files under work_dir can be served from it")
        return self


def _code_from(params: str | dict[str, Any]) -> str:
    """The code in Qwen-Agent's tool arguments: ``{"code": ...}`` as JSON/JSON5/a dict, else the text itself.

    A fenced block in the text is unwrapped by qwenkit's interpreter, as in Qwen-Agent's ``extract_code``.
    """
    parsed: Any = params
    if isinstance(params, str):
        try:
            parsed = json.loads(params)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit (hostile input)
            # JSON5 (what Qwen-Agent reads) is pure Python and slow: only for text of argument size.
            try:
                parsed = json5.loads(params) if len(params) <= _JSON5_MAX_CHARS else None
            except Exception:  # not JSON at all: raw code or a fenced block (Qwen-Agent's ReAct prompt asks for it)
                parsed = None
    if not isinstance(parsed, dict) or "code" not in parsed:
        return params if isinstance(params, str) else ""
    code = parsed["code"]
    return code if isinstance(code, str) else json.dumps(code, ensure_ascii=False, default=str)


def _positive(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


class _Runtime:
    """The interpreter and its private loop; no reference to the tool, so the tool's finaliser can use it."""

    def __init__(self, interpreter: CodeInterpreter, name: str) -> None:
        self.interpreter = interpreter
        self.loop = LoopThread(name)

    def kill(self) -> None:
        """Kill every kernel without the loop (finalisers; a close that could not finish)."""
        interpreter = self.interpreter
        try:
            interpreter.close_now()
            if type(interpreter).close_now is Tool.close_now:  # no synchronous close of its own: use kill_now
                kill_now = getattr(interpreter, "kill_now", None)
                if callable(kill_now):
                    kill_now()
        except Exception:  # a finaliser must not raise; the kernels die with this process at worst
            pass

    def close(self) -> None:
        """Shut the kernels down on the loop (killing them if that fails or hangs), then stop the loop."""
        if self.loop.started and not self.loop.stopped:
            if self.loop.in_loop_thread():
                self.kill()
            else:
                try:
                    self.loop.run(self.interpreter.aclose(), timeout=_CLOSE_S)
                except Exception:
                    self.kill()
        self.loop.stop(wait=True)

    def close_now(self) -> None:
        """For the finaliser: kill the kernels and stop the loop without blocking."""
        if self.loop.started:
            self.kill()
        self.loop.stop(wait=False)


class QwenkitCodeInterpreter(BaseTool):
    """A Qwen-Agent ``code_interpreter`` tool that runs code in qwenkit's bubblewrap sandbox, without Docker.

    Use it where Qwen-Agent's own ``'code_interpreter'`` goes: ``Assistant(function_list=[
    QwenkitCodeInterpreter()])``. The model sees the same name and arguments (``{"code": ...}``; a fenced
    block or plain code is accepted too). Observations read like Qwen-Agent's: ``stdout``/``stderr``/
    ``error`` blocks, and one ``![fig-001](url)`` line per figure, numbered per call.

    Kernel state (variables, imports, files) persists between calls: one kernel for the tool instance, or one
    per ``session_id`` when the caller passes it (``agent.run(messages, session_id="...")``; Qwen-Agent hands
    its run's keyword arguments to tools). `close_session` ends one; `close` (or ``with``) ends all of them,
    and a finaliser kills the kernels of a tool dropped unclosed.

    Qwen-Agent calls tools synchronously, from any thread and with or without a running event loop: each
    instance runs qwenkit's async interpreter on its own private event loop in a dedicated thread.

    Errors: whatever the code does is an observation. A sandbox that cannot run on this machine
    (`qwenkit.errors.SandboxUnavailable`) or a misconfiguration (`qwenkit.errors.ConfigError`) is raised as
    Qwen-Agent's ``ToolServiceError`` (which Qwen-Agent's agents let through, ending the run), with the qwenkit
    error as its ``exception`` and ``__cause__``: no model can fix those.

    Args:
        cfg: Settings as a dict (see `QwenkitCodeInterpreterConfig`); Qwen-Agent's own keys are allowed.
        interpreter: A qwenkit `CodeInterpreter` to use instead of one built from ``cfg`` (for a custom pool
            or limits). It is bound to this tool's loop and closed with the tool.

    Raises:
        ConfigError: ``cfg`` is invalid.
    """

    name = "code_interpreter"
    description = CodeInterpreter.spec.description
    parameters = json.loads(json.dumps(CodeInterpreter.spec.parameters))  # a copy: Qwen-Agent may edit it

    def __init__(self, cfg: dict[str, Any] | None = None, *, interpreter: CodeInterpreter | None = None) -> None:
        super().__init__(cfg)
        try:
            settings = QwenkitCodeInterpreterConfig.model_validate(self.cfg)
        except ValidationError as exc:
            raise ConfigError(f"invalid settings for QwenkitCodeInterpreter: {exc}") from exc
        if interpreter is None:
            interpreter = CodeInterpreter(
                timeout=settings.timeout, policy=settings.policy, pool_size=settings.pool_size,
                workdir_root=settings.work_dir, idle_timeout=settings.idle_timeout,
            )
        self.settings = settings
        self.interpreter = interpreter
        self._conversation = f"qwen-agent-{uuid.uuid4().hex[:12]}"
        self._runtime = _Runtime(interpreter, f"qwenkit-code-interpreter-{self._conversation}")
        self._closed = False
        self._finalizer = weakref.finalize(self, _Runtime.close_now, self._runtime)

    @property
    def args_format(self) -> str:
        """How the model should write the arguments in Qwen-Agent's ReAct prompt (as its own interpreter says)."""
        fmt = self.cfg.get("args_format")
        if isinstance(fmt, str):
            return fmt
        if has_chinese_chars([self.name_for_human, self.name, self.description, self.parameters]):
            return "此工具的输入应为Markdown代码块。"
        return "Enclose the code within triple backticks (`) at the beginning and end of the code."

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def conversation_id(self, session_id: str | None = None) -> str:
        """The qwenkit conversation behind a Qwen-Agent session (``None``: the instance's own)."""
        return self._conversation if not session_id else f"{self._conversation}/{session_id}"

    def call(self, params: str | dict[str, Any], **kwargs: Any) -> str:
        """Run the code in ``params`` and return the observation text.

        Args:
            params: ``{"code": "..."}`` as JSON or a dict, or the code itself (a fenced block is unwrapped).
            **kwargs: ``session_id`` picks the kernel (default: the instance's own); ``timeout`` (seconds)
                overrides the cell limit for this call. Others (Qwen-Agent passes ``messages``, ``lang``...)
                are ignored.

        Returns:
            The observation: output blocks, ``![fig-NNN](url)`` per figure, notes on timeouts and restarts.

        Raises:
            ToolServiceError: The sandbox cannot run here, the settings are wrong, or the tool was closed.
        """
        if self._closed:
            raise ToolServiceError(exception=SessionClosed("the qwenkit code interpreter was closed"))
        session = kwargs.get("session_id")
        limit = _positive(kwargs.get("timeout")) or self.interpreter.timeout
        ctx: ToolContext[None] = ToolContext(
            conversation_id=self.conversation_id(str(session) if session else None), call_id=new_call_id(),
            timeout=limit, agent_name="qwen-agent",
        )
        # The interpreter interrupts the cell at `limit` itself; this later deadline only guards against a hang.
        margin = float(getattr(self.interpreter, "timeout_margin", 60.0))
        deadline = None if limit is None else limit + margin + SAFETY_MARGIN_S
        try:
            out = self._runtime.loop.run(self.interpreter.run({"code": _code_from(params)}, ctx), timeout=deadline)
        except ModelRetry as retry:
            return retry.message
        except LoopTimeout:
            return f"Error: the code did not stop within {limit:g} s, even when interrupted."
        except OPERATOR_ERRORS as exc:
            raise ToolServiceError(exception=exc, code=type(exc).__name__, message=str(exc)) from exc
        except Exception as exc:
            if self._runtime.loop.stopped:  # closed by another thread while this call waited
                closed = SessionClosed("the qwenkit code interpreter was closed during the call")
                raise ToolServiceError(exception=closed) from exc
            # The interpreter's own failure: an observation, as qwenkit's registry makes it.
            return f"Error: {type(exc).__name__}: {exc}"
        if not isinstance(out, ToolOutput):
            out = ToolOutput(text=str(out))
        return clean_text(self._qwen_agent_text(out))[0]

    def _image_url(self, path: str) -> str:
        base = self.settings.static_url
        if not base:
            return path
        root = self.interpreter.workdir_root
        relative = Path(Path(path).name)  # the best guess for a file outside work_dir (should not happen)
        if root is not None:
            with contextlib.suppress(ValueError):
                relative = Path(path).resolve().relative_to(root.resolve())
        return f"{base.rstrip('/')}/{quote(str(relative).replace(os.sep, '/'))}"

    def _qwen_agent_text(self, out: ToolOutput) -> str:
        """qwenkit's observation with each image written as Qwen-Agent writes it: ``![fig-001](url)``."""
        text = out.text
        for index, path in enumerate(out.images, 1):
            line = f"![fig-{index:03d}]({self._image_url(path)})"
            marker = re.compile(r"!\[[^\]\n]*\]\(" + re.escape(path) + r"\)")
            text, found = marker.subn(lambda _m, line=line: line, text, count=1)
            if not found:
                text = f"{text}\n\n{line}"
        return text

    def close_session(self, session_id: str) -> None:
        """Kill the kernel of one ``session_id`` (its state is gone; a later call starts a new one)."""
        if self._closed or not self._runtime.loop.started:
            return
        self._runtime.loop.run(self.interpreter.close_conversation(self.conversation_id(session_id)))

    def close(self) -> None:
        """Kill every kernel of this tool and stop its event loop thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        self._runtime.close()

    def __enter__(self) -> QwenkitCodeInterpreter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
