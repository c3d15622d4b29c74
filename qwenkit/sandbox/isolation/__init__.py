"""Isolation policies: how a kernel is confined (`bubblewrap`, the default) or not (`unsandboxed`)."""

from __future__ import annotations

from typing import Literal

from qwenkit.sandbox.isolation.base import Check, IsolationPolicy, KernelDirs, LaunchPlan, LaunchRequest, PolicyCheck
from qwenkit.sandbox.isolation.bubblewrap import BubblewrapPolicy
from qwenkit.sandbox.isolation.unsandboxed import UnsandboxedPolicy

PolicyName = Literal["bubblewrap", "unsandboxed"]


def get_policy(policy: IsolationPolicy | PolicyName | None = None) -> IsolationPolicy:
    """Return a policy object; ``None`` means the default, ``bubblewrap``.

    There is deliberately no automatic fallback: ``unsandboxed`` is used only when asked for by name
    (or as an instance).
    """
    if policy is None or policy == "bubblewrap":
        return BubblewrapPolicy()
    if policy == "unsandboxed":
        return UnsandboxedPolicy()
    if isinstance(policy, IsolationPolicy):
        return policy
    raise ValueError(f"unknown isolation policy {policy!r}; use 'bubblewrap' or 'unsandboxed'")


__all__ = [
    "BubblewrapPolicy", "Check", "IsolationPolicy", "KernelDirs", "LaunchPlan", "LaunchRequest", "PolicyCheck",
    "PolicyName", "UnsandboxedPolicy", "get_policy",
]
