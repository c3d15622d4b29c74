"""Bounds on what rendering an untrusted chat template may cost: time, output size, big strings and numbers.

A chat template comes from a file (a GGUF's metadata, a ``--chat-template`` file), so it is untrusted input.
Jinja2's sandbox keeps it away from Python's internals but not from the CPU or memory: ``range`` nested in
``range``, a macro calling itself twice, ``'x' * 10**10``, ``'{:>9999999999}'.format(1)`` or a chain of
``replace`` each hold the process for minutes or exhaust its memory. `BoundedEnvironment` checks a deadline
at every hook Jinja2's sandbox offers (each call, attribute and item lookup, operator, ``range`` and output
chunk) and refuses, before running it, an operation whose result would exceed `MAX_TEXT`.

What it cannot see: loops that neither look anything up, call anything nor write output (Jinja2 compiles
them to plain Python loops; nested over the messages they cost at most ``len(messages) ** depth`` empty
steps), and ``~`` joining plain variables (``{% set x = x ~ x %}`` written out many times over) until
memory runs out, which ends the render with an error only where Python gets a `MemoryError`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEXT = 8_000_000
"""Most characters one value or the whole rendered prompt may hold (a 1M-token prompt is about 4M)."""

MAX_RANGE_ITEMS = 1_000_000
"""Most numbers all the ``range`` calls of one render may yield together."""

MAX_INDENT = 64
"""Widest ``tojson`` indent (it is written on every line, once per nesting level)."""

MAX_POWER_BITS = 100_000
"""Largest integer ``a ** b`` may produce, in bits."""

_WIDE_PERCENT = re.compile(r"%[-#0 +]*(?:\*|\d{5,})|%[-#0 +]*\d*\.(?:\*|\d{5,})")
# A width of 10,000 or more, or a width given by a nested field (``{0:>{1}}``), which real templates never use.
_WIDE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(?:\d{5,}|\{)")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class TemplateLimit(TemplateError):
    """The template went past one of the bounds."""


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with a time limit and size checks (see the module docstring).

    Args:
        time_limit: Seconds one render may take.
        **options: Jinja2 environment options.
    """

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, time_limit: float, **options: Any) -> None:
        super().__init__(**options)
        self.time_limit = time_limit
        self._deadline = math.inf
        self._range_left = MAX_RANGE_ITEMS
        self.globals["range"] = self._range
        for name in ("center", "indent", "format", "replace", "wordwrap"):
            self.filters[name] = self._checked_filter(name, self.filters[name])

    # ------------------------------------------------------------------ rendering

    def render_bounded(self, template: str, **variables: Any) -> str:
        """Render ``template`` within the bounds.

        Raises:
            TemplateError: The template failed or went past a bound (`TemplateLimit`).
        """
        self._deadline = time.monotonic() + self.time_limit
        self._range_left = MAX_RANGE_ITEMS
        parts: list[str] = []
        size = 0
        try:
            for chunk in self.from_string(template).generate(**variables):
                size += len(chunk)
                if size > MAX_TEXT:
                    raise TemplateLimit(f"it wrote more than {MAX_TEXT:,} characters")
                self._tick()
                parts.append(chunk)
        except RecursionError:
            raise TemplateLimit("it recursed too deeply") from None
        except MemoryError:
            raise TemplateLimit("it ran out of memory") from None
        finally:
            self._deadline = math.inf
        return "".join(parts)

    def _tick(self) -> None:
        if time.monotonic() > self._deadline:
            raise TemplateLimit(f"it ran longer than {self.time_limit:g} s")

    # ------------------------------------------------------------------ the sandbox's hooks

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self._tick()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._tick()
        # Checked here: the sandbox hands out str.format wrapped, with the format string out of reach.
        if isinstance(obj, str) and attribute in ("format", "format_map") and _WIDE_FORMAT.search(obj):
            raise TemplateLimit("a str.format field with a width or precision of 10,000 or more")
        return _sized(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._tick()
        return _sized(super().getitem(obj, argument))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self._tick()
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _check_size(len(left) + len(right))
        elif operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str) and _WIDE_PERCENT.search(left):
            raise TemplateLimit("a %-format with a width or precision of 10,000 or more")
        return super().call_binop(context, operator, left, right)

    def _range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        self._range_left -= len(numbers)
        if self._range_left < 0:
            raise TemplateLimit(f"its range() calls asked for more than {MAX_RANGE_ITEMS:,} numbers")
        return iter(numbers)

    def _checked_filter(self, name: str, inner: Any) -> Any:
        def check(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self._tick()
            text = value if isinstance(value, str) else None
            if name in ("center", "indent", "wordwrap"):
                width = args[0] if args else kwargs.get("width", 0)
                if isinstance(width, int) and not isinstance(width, bool):
                    _check_size(width)
                elif name == "indent" and isinstance(width, str) and text is not None:
                    _check_size(len(width) * (text.count("\n") + 1) + len(text))
            elif name == "format" and text is not None and _WIDE_PERCENT.search(text):
                raise TemplateLimit("a %-format with a width or precision of 10,000 or more")
            elif name == "replace" and text is not None and len(args) >= 2:
                _check_replace(text, args[0], args[1])

        def plain(value: Any, *args: Any, **kwargs: Any) -> Any:
            check(value, args, kwargs)
            return inner(value, *args, **kwargs)

        def passed(extra: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            check(value, args, kwargs)
            return inner(extra, value, *args, **kwargs)

        mark = getattr(inner, "jinja_pass_arg", None)
        if mark is None:
            return plain
        # Jinja2 passes the environment or evaluation context first to filters marked for it.
        passed.jinja_pass_arg = mark  # type: ignore[attr-defined]
        return passed


def _sized(value: Any) -> Any:
    """``value``, if it is not a text past `MAX_TEXT` (one built up with ``~`` in a namespace, say)."""
    if isinstance(value, str):
        _check_size(len(value))
    return value


def _check_size(n: int) -> None:
    if n > MAX_TEXT:
        raise TemplateLimit(f"a value of more than {MAX_TEXT:,} characters")


def _check_repeat(seq: Any, times: Any) -> None:
    if isinstance(seq, str | list | tuple) and isinstance(times, int) and not isinstance(times, bool):
        _check_size(len(seq) * max(times, 0))


def _check_power(base: Any, exponent: Any) -> None:
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
            and exponent * math.log2(abs(base)) > MAX_POWER_BITS):
        raise TemplateLimit(f"a power of more than {MAX_POWER_BITS:,} bits")


def _check_replace(text: str, old: Any, new: Any) -> None:
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        hits = len(text) + 1 if not old else text.count(old)
        _check_size(len(text) + hits * (len(new) - len(old)))


def _check_str_method(text: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if method in _PADDING_METHODS:
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            _check_size(width)
    elif method == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1])
    elif method == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            _check_size(len(text) + text.count("\t") * size)
