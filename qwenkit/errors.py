"""Every error qwenkit raises on purpose, under one root: `QwenkitError`.

Catch `QwenkitError` to handle anything qwenkit reports; catch a subclass for one kind of failure. Messages
describe the problem (never a CLI flag): the CLI adds the flag names when it shows them as one line.
Anything the *model* did wrong (a bad call, a failing tool) is never an exception: it reaches the model as
an observation. These errors are for the operator: configuration, servers, the machine.
"""

from __future__ import annotations


class QwenkitError(Exception):
    """Root of every error qwenkit raises on purpose."""


class ConfigError(QwenkitError):
    """The configuration is wrong: a bad setting, missing data, an unknown model or format.

    The message is shown to the user as it is, so it is a complete sentence saying what to do.
    """


class ModelError(QwenkitError):
    """A model backend failed in a way the caller must see (server down, unknown model, bad reply)."""


class SandboxError(QwenkitError):
    """Base class of every error the sandbox raises."""


class SandboxUnavailable(SandboxError):
    """The requested isolation policy cannot run on this machine.

    The message names what is missing (``bwrap`` not installed, user namespaces disabled, ...); the
    session never falls back to running code unisolated on its own. A run that meets it ends with this
    error: the model cannot fix the machine.
    """


class KernelStartError(SandboxError):
    """A kernel process was launched but never answered; the message carries its last output."""


class SessionClosed(SandboxError):
    """The session was closed (explicitly, or reaped after being idle) and cannot run code."""


class PullError(ConfigError):
    """No source produced the model with the pinned size and SHA-256."""


class ChecksumError(PullError):
    """A source's bytes did not match the pin; the file was refused and deleted."""


class MCPServerError(ConfigError):
    """An MCP server cannot be used: it did not start, does not speak MCP, or stopped.

    A `ConfigError`, so an agent run that meets it ends (the model cannot restart a server); the message
    names the server and what happened.
    """


class BenchError(QwenkitError):
    """A benchmark cannot run: its data is missing or malformed, or its output folder is unusable."""


class TranscriptError(QwenkitError):
    """A transcript cannot be read, written or resumed (corrupt, not a transcript, or in use)."""


class TranscriptLocked(TranscriptError):
    """Another run holds the transcript; two processes must never run the same conversation at once."""


__all__ = [
    "BenchError",
    "ChecksumError",
    "ConfigError",
    "KernelStartError",
    "MCPServerError",
    "ModelError",
    "PullError",
    "QwenkitError",
    "SandboxError",
    "SandboxUnavailable",
    "SessionClosed",
    "TranscriptError",
    "TranscriptLocked",
]
