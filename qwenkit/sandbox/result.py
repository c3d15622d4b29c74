"""The typed result of running one cell, and the observation text a model reads for it.

This module only describes and renders a result; `qwenkit.sandbox.output` builds one from a kernel's
messages (it imports this module, never the other way round).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.sandbox.text import collapse_carriage_returns, short_traceback


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
        error: The exception the code raised (``KeyboardInterrupt`` after an interrupt). Also set when
            the kernel reported the cell failed without a usable error message (an exception IPython
            could not format, say).
        duration_s: Wall-clock seconds from sending the code until the kernel was idle (or given up).
        timeout_s: The timeout that applied to this cell.
        timed_out: The cell ran past its timeout.
        interrupted: The kernel was interrupted (after a timeout) and stopped; its state is kept.
        restarted: The kernel was killed and will be replaced; all state was lost.
        kernel_died: The kernel process exited during the cell (``os._exit``, a crash, out of memory).
        exit_code: The dead kernel's exit status, when known (negative: killed by that signal).
        death_reason: Why the kernel was lost, when more is known than an exit code (a remote
            kernel's gateway went away or restarted it).
        truncated: Some output was dropped (``dropped_chars`` characters, ``dropped_images`` images).
        dropped_chars: Characters dropped by the output caps (in the kernel or in the client).
        dropped_images: Image displays not saved because of the per-cell count or size limits, or the
            outputs folder's budget.
        invalid_images: ``image/png`` displays that were not a readable PNG image, not saved.
        replaced_chars: Some kernel text held characters that cannot be encoded (lone surrogates);
            they were replaced with U+FFFD.
        stopped_processes: Background processes the cell left running that were stopped after it.
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
    death_reason: str | None = None
    truncated: bool = False
    dropped_chars: int = 0
    dropped_images: int = 0
    invalid_images: int = 0
    replaced_chars: bool = False
    stopped_processes: int = 0
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
        """Format the result as the text a model reads (see `format_observation`)."""
        return format_observation(self, traceback_chars=traceback_chars)


def _block(title: str, body: str) -> str:
    return f"{title}:\n```\n{body.rstrip()}\n```"


def _notes(result: ExecutionResult) -> list[str]:
    notes: list[str] = []
    if result.dropped_chars:
        notes.append(f"output truncated: {result.dropped_chars} characters dropped (head and tail kept)")
    if result.dropped_images:
        notes.append(f"{result.dropped_images} more image(s) not saved (per-cell image count or size limit)")
    if result.invalid_images:
        notes.append(f"{result.invalid_images} image output(s) were not valid PNG images and were not saved")
    if result.replaced_chars:
        notes.append("characters that cannot be encoded (lone surrogates) were replaced with U+FFFD")
    if result.stopped_processes:
        notes.append(
            f"{result.stopped_processes} background process(es) left running by the cell were stopped; "
            "start long-running work in the foreground of a cell"
        )
    if result.kernel_died and result.death_reason:
        notes.append(
            f"the kernel was lost while running this cell: {result.death_reason}; a new kernel starts on "
            "the next call and all variables and files are lost"
        )
    elif result.kernel_died:
        code = f" (exit code {result.exit_code})" if result.exit_code is not None else ""
        notes.append(
            f"the kernel died while running this cell{code}, e.g. os._exit, a crash or running out of "
            "memory; a new kernel starts on the next call and all variables and files are lost"
        )
    elif result.timed_out and result.restarted:
        notes.append(
            f"the cell was interrupted after {result.timeout_s:g} s (its time limit) but did not stop; the "
            "kernel was restarted and all variables and files are lost"
        )
    elif result.timed_out:
        notes.append(
            f"the cell was interrupted after {result.timeout_s:g} s (its time limit); variables set "
            "before the interrupt are kept"
        )
    elif result.restarted:
        notes.append("the kernel was restarted; all variables and files are lost")
    return notes


def format_observation(result: ExecutionResult, *, traceback_chars: int = 1500) -> str:
    """Write a result as the observation a model reads.

    Sections appear only when present: ``stdout``, ``stderr``, ``Out`` (last value), ``error`` (a
    short traceback), one ``![fig-N](path)`` line per image, then notes on truncation, timeouts and
    restarts. A cell with no output at all reads ``Finished execution (no output).``.
    """
    parts: list[str] = []
    if result.previous_state_lost:
        # First, because it explains what follows (a NameError for a variable defined earlier, say).
        parts.append(
            f"[Note: {result.previous_state_lost}; this cell ran in a new kernel, so earlier variables and "
            "files are gone.]"
        )
    stdout = collapse_carriage_returns(result.stdout)
    if stdout.strip():
        parts.append(_block("stdout", stdout))
    stderr = collapse_carriage_returns(result.stderr)
    if stderr.strip():
        parts.append(_block("stderr", stderr))
    if result.result is not None:
        parts.append(_block("Out", result.result))
    if result.error is not None:
        err = result.error
        tb = short_traceback(err.traceback, traceback_chars) if err.traceback else f"{err.name}: {err.value}"
        parts.append(_block("error", tb))
    for path in result.images:
        name = path.rsplit("/", 1)[-1].removesuffix(".png")
        parts.append(f"![{name}]({path})")
    parts += [f"[Note: {n}.]" for n in _notes(result)]
    return "\n\n".join(parts) if parts else "Finished execution (no output)."
