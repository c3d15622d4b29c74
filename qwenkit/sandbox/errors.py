"""Errors raised by the sandbox; each message says what to do about it."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of every error the sandbox raises."""


class SandboxUnavailable(SandboxError):
    """The requested isolation policy cannot run on this machine.

    The message names what is missing (``bwrap`` not installed, user namespaces disabled, ...); the
    session never falls back to running code unisolated on its own.
    """


class KernelStartError(SandboxError):
    """A kernel process was launched but never answered; the message carries its last output."""


class SessionClosed(SandboxError):
    """The session was closed (explicitly, or reaped after being idle) and cannot run code."""
