"""The ``qwenkit`` argument parser and value types that refuse nonsense when the flags are parsed.

A value type raises `argparse.ArgumentTypeError`; argparse then names the flag, and `Parser` prints the
whole complaint as one line with exit code 2 (plain argparse prints its usage block too).
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

SEED_RANGE = (-(2**63), 2**63 - 1)
"""Seeds a server accepts: a signed 64-bit integer (vLLM's limit; llama.cpp wraps it)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line with exit code 2 (argparse prints usage too)."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(message.split())
        self.exit(2, f"qwenkit: error: {one_line} (see '{self.prog} --help')\n")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):  # float() accepts "nan" and "inf"; no setting means either
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``--max-steps``, ``--max-tokens``, ``--limit``, ``--concurrency``)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of at least 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def seed(text: str) -> int:
    """A sampling seed: a signed 64-bit integer."""
    value = _int(text)
    if not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise argparse.ArgumentTypeError(f"must be between -2**63 and 2**63-1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (timeouts in seconds)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of at least 0 (``--temperature``)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value
