"""`calculator`: exact arithmetic on a Python-style expression, without running any code.

The expression comes from a model, so it is hostile input. CPython's big-integer arithmetic holds the GIL
and cannot be interrupted, so an unbounded operation (``round(1, -10**8)``, a chain of multiplications)
would freeze every thread of the process: the tool's timeout could not fire and Ctrl-C would be ignored.
So every operation is checked *before* it runs — integer sizes, exponents, factorials, round's digits,
nesting depth, the length of the expression — and the whole expression has a work budget. The worst
accepted expression takes milliseconds; anything bigger is refused with a message the model can act on.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from qwenkit.tools.base import ModelRetry
from qwenkit.tools.function import FunctionTool

Number = int | float

MAX_EXPRESSION_CHARS = 2_000
"""Longest expression accepted (a real calculation is far shorter)."""
MAX_DEPTH = 64
"""Deepest nesting of operations accepted (keeps the evaluator's recursion shallow)."""
MAX_INT_BITS = 100_000
"""Largest integer (about 30,000 digits): big enough for exact answers, small enough to compute instantly."""
MAX_FACTORIAL = 5_000
"""Largest factorial argument (5000! has 16,326 digits)."""
MAX_ROUND_DIGITS = 30_000
"""Largest ``abs(ndigits)`` for ``round``: round(int, -n) computes 10**n."""
WORK_BUDGET_BITS = 1_000_000
"""Total operand and result bits one expression may process: about ten operations on the largest integers."""
MAX_SHOWN_DIGITS = 4_000
"""Integers with more digits are shown as their leading digits and length (Python refuses str() above 4300)."""

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "factorial": math.factorial, "log": math.log, "exp": math.exp, "abs": abs,
    "round": round, "sin": math.sin, "cos": math.cos, "tan": math.tan,
}
_NAMES: dict[str, float] = {"pi": math.pi, "e": math.e}
_TOO_LARGE = "the result would be too large (integers are limited to {} bits, about {} digits); use smaller numbers"


def _bits(value: Number) -> int:
    return value.bit_length() if isinstance(value, int) else 64


def _too_large() -> ModelRetry:
    return ModelRetry(_TOO_LARGE.format(MAX_INT_BITS, int(MAX_INT_BITS * math.log10(2))))


def _check_binary(op: ast.operator, left: Number, right: Number) -> None:
    """Refuse an integer operation whose result would exceed `MAX_INT_BITS`, before computing it."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return  # float arithmetic is constant-time; int->float conversion of a bounded int is too
    if isinstance(op, ast.Mult) and left and right and _bits(left) + _bits(right) - 1 > MAX_INT_BITS:
        raise _too_large()
    # abs(left) >= 2, so an exponent above MAX_INT_BITS is too large (and would overflow the float product).
    if isinstance(op, ast.Pow) and right > 0 and abs(left) > 1 and (
            right > MAX_INT_BITS or right * math.log2(abs(left)) > MAX_INT_BITS):
        raise _too_large()


def _check_call(name: str, values: list[Number]) -> None:
    """Refuse a function call whose cost grows with an argument's value, before making it."""
    if name == "factorial" and values and isinstance(values[0], int) and values[0] > MAX_FACTORIAL:
        raise ModelRetry(f"factorial argument too large (at most {MAX_FACTORIAL})")
    if name == "round" and len(values) == 2 and isinstance(values[1], int) and abs(values[1]) > MAX_ROUND_DIGITS:
        raise ModelRetry(f"round's ndigits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}")


class _Evaluator:
    """Walks the expression's syntax tree, charging every operation to a work budget."""

    def __init__(self) -> None:
        self.work = 0

    def charge(self, *values: Number) -> None:
        self.work += sum(_bits(v) for v in values)
        if self.work > WORK_BUDGET_BITS:
            raise ModelRetry("the expression needs too much computation; split it into smaller steps")

    def result(self, value: Any) -> Number:
        """Check one operation's result: a real number, an integer within `MAX_INT_BITS`."""
        if isinstance(value, complex):
            raise ModelRetry("the result is a complex number; the calculator works with real numbers")
        if isinstance(value, int) and _bits(value) > MAX_INT_BITS:
            raise _too_large()
        self.charge(value)
        return value

    def eval(self, node: ast.AST, depth: int = 0) -> Number:
        if depth > MAX_DEPTH:
            raise ModelRetry(f"the expression is nested too deeply (at most {MAX_DEPTH} levels)")
        match node:
            case ast.Expression():
                return self.eval(node.body, depth + 1)
            case ast.Constant(value=value) if type(value) in (int, float):
                return self.result(value)
            case ast.Name(id=name) if name in _NAMES:
                return _NAMES[name]
            case ast.BinOp(op=op) if type(op) in _BINARY:
                left, right = self.eval(node.left, depth + 1), self.eval(node.right, depth + 1)
                _check_binary(op, left, right)
                self.charge(left, right)
                return self.result(_BINARY[type(op)](left, right))
            case ast.UnaryOp(op=op) if type(op) in _UNARY:
                return self.result(_UNARY[type(op)](self.eval(node.operand, depth + 1)))
            case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCS:
                values = [self.eval(a, depth + 1) for a in args]
                _check_call(name, values)
                self.charge(*values)
                try:
                    return self.result(_FUNCS[name](*values))
                except TypeError as err:  # wrong number or kind of arguments
                    raise ModelRetry(f"{name}(): {err}") from err
        raise ModelRetry(f"unsupported expression element: {ast.dump(node)[:80]}; use numbers, + - * / // % ** "
                         f"and {', '.join(sorted(_FUNCS))}")


def _show(value: Number) -> str:
    """The result as text: exact up to `MAX_SHOWN_DIGITS` digits, else its leading digits and length."""
    if not isinstance(value, int) or _bits(value) <= MAX_SHOWN_DIGITS * 3.32:  # 3.32 bits per digit
        return repr(value)
    sign, x = ("-" if value < 0 else ""), abs(value)
    exp10 = int(math.log10(x))  # may be off by one near a power of ten: corrected below
    lead = x // 10 ** (exp10 - 15)
    if lead >= 10**16:
        exp10, lead = exp10 + 1, lead // 10
    elif lead < 10**15:
        exp10, lead = exp10 - 1, x // 10 ** (exp10 - 16)
    if exp10 + 1 <= MAX_SHOWN_DIGITS:
        return repr(value)
    return (f"{sign}{lead // 10**15}.{lead % 10**15:015d}e+{exp10} (an integer with {exp10 + 1} digits, "
            f"leading digits shown; exact values are shown up to {MAX_SHOWN_DIGITS} digits)")


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "factorial(5) + 2**10".

    Args:
        expression: Python-style arithmetic: numbers, + - * / // % **, parentheses, pi, e and the
            functions sqrt, factorial, log, exp, abs, round, sin, cos, tan.
    """
    text = expression.strip()
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ModelRetry(f"the expression is too long ({len(text)} characters, at most {MAX_EXPRESSION_CHARS})")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise ModelRetry(f"not a valid expression: {err.msg}") from err
    except (ValueError, MemoryError, RecursionError) as err:  # NUL bytes; parser stack overflow
        raise ModelRetry(f"not a valid expression: {err or 'nested too deeply'}") from err
    try:
        return _show(_Evaluator().eval(tree))
    except ZeroDivisionError as err:
        raise ModelRetry(f"division by zero: {err}") from err
    except OverflowError as err:
        raise ModelRetry(f"the result is too large for a floating-point number: {err}") from err
    except ValueError as err:  # math domain errors: sqrt(-1), log(0), factorial(-1)
        raise ModelRetry(f"not defined for these arguments: {err}") from err


def calculator_tool() -> FunctionTool:
    """Return a new `calculator` tool."""
    return FunctionTool(calculate, name="calculator", human_name="Calculator", timeout=5.0)
