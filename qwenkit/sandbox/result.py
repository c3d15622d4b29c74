"""The typed result of running one cell."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ExecutionError(BaseModel):
    """An exception raised by the cell's code.

    Attributes:
        name: Exception class name (``ZeroDivisionError``).
        value: Its message.
        traceback: Traceback lines without terminal colour codes, shortened to the last frames.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    value: str
    traceback: str = ""


class ExecutionResult(BaseModel):
    """What one ``execute`` call produced.

    Attributes:
        stdout: Text printed to stdout (and text-only displays), capped (see ``truncated``).
        stderr: Text printed to stderr (warnings included), capped.
        result: ``text/plain`` of the cell's last expression, if it had a value.
        images: Paths of PNG files saved for the cell's ``image/png`` displays, in order.
        error: The exception the code raised (``KeyboardInterrupt`` after an interrupt).
        duration_s: Wall-clock seconds from sending the code until the kernel was idle (or given up).
        timeout_s: The timeout that applied to this cell.
        timed_out: The cell ran past its timeout.
        interrupted: The kernel was interrupted (after a timeout) and stopped; its state is kept.
        restarted: The kernel was killed and will be replaced; all state was lost.
        kernel_died: The kernel process exited during the cell (``os._exit``, a crash, out of memory).
        exit_code: The dead kernel's exit status, when known (negative: killed by that signal).
        truncated: Some output was dropped (``dropped_chars`` characters, ``dropped_images`` images).
        dropped_chars: Characters dropped by the output cap (in the kernel or in the client).
        dropped_images: Image displays beyond the per-cell image limit, not saved.
        workdir: The kernel's working directory, as code inside sees it.
        previous_state_lost: Set when this cell ran in a new kernel that replaced one which died or
            was restarted after the caller last heard from it: why the earlier state is gone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    images: list[str] = Field(default_factory=list)
    error: ExecutionError | None = None
    duration_s: float = 0.0
    timeout_s: float = 0.0
    timed_out: bool = False
    interrupted: bool = False
    restarted: bool = False
    kernel_died: bool = False
    exit_code: int | None = None
    truncated: bool = False
    dropped_chars: int = 0
    dropped_images: int = 0
    workdir: str = ""
    previous_state_lost: str | None = None

    @property
    def ok(self) -> bool:
        """True when the code ran to completion without raising."""
        return self.error is None and not self.timed_out and not self.kernel_died and not self.restarted

    @property
    def state_lost(self) -> bool:
        """True when the kernel's variables are gone (it died or was restarted)."""
        return self.kernel_died or self.restarted

    def to_observation(self, *, traceback_chars: int = 1500) -> str:
        """Format the result as the text a model reads (see `qwenkit.sandbox.output.format_observation`)."""
        from qwenkit.sandbox.output import format_observation

        return format_observation(self, traceback_chars=traceback_chars)
