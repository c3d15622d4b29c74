"""`calculator`: exact arithmetic on a Python-style expression, without running any code."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from qwenkit.tools.base import ModelRetry
from qwenkit.tools.function import FunctionTool

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "factorial": math.factorial, "log": math.log, "exp": math.exp, "abs": abs,
    "round": round, "sin": math.sin, "cos": math.cos, "tan": math.tan,
}
_NAMES = {"pi": math.pi, "e": math.e}
_MAX_RESULT_BITS = 100_000  # big enough for exact answers, small enough to compute instantly
_MAX_FACTORIAL = 5_000


def _pow_too_big(base: Any, exponent: Any) -> bool:
    """Whether ``base ** exponent`` would have more than `_MAX_RESULT_BITS` bits (floats overflow by themselves)."""
    if not isinstance(base, int) or not isinstance(exponent, int) or exponent <= 0:
        return isinstance(exponent, int | float) and abs(exponent) > _MAX_RESULT_BITS
    return max(base.bit_length(), 1) * exponent > _MAX_RESULT_BITS


def _eval(node: ast.AST) -> Any:
    match node:
        case ast.Expression():
            return _eval(node.body)
        case ast.Constant(value=int() | float() as v):
            return v
        case ast.Name(id=name) if name in _NAMES:
            return _NAMES[name]
        case ast.BinOp(op=op) if type(op) in _BINARY:
            left, right = _eval(node.left), _eval(node.right)
            if isinstance(op, ast.Pow) and _pow_too_big(left, right):
                raise ModelRetry("the result would be too large; use smaller numbers")
            return _BINARY[type(op)](left, right)
        case ast.UnaryOp(op=op) if type(op) in _UNARY:
            return _UNARY[type(op)](_eval(node.operand))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCS:
            values = [_eval(a) for a in args]
            if name == "factorial" and values and isinstance(values[0], int) and values[0] > _MAX_FACTORIAL:
                raise ModelRetry(f"factorial argument too large (at most {_MAX_FACTORIAL})")
            return _FUNCS[name](*values)
    raise ModelRetry(f"unsupported expression element: {ast.dump(node)[:80]}; use numbers, + - * / // % ** "
                     f"and {', '.join(sorted(_FUNCS))}")


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "factorial(5) + 2**10".

    Args:
        expression: Python-style arithmetic: numbers, + - * / // % **, parentheses, pi, e and the
            functions sqrt, factorial, log, exp, abs, round, sin, cos, tan.
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ModelRetry(f"not a valid expression: {err.msg}") from err
    return repr(_eval(tree))


def calculator_tool() -> FunctionTool:
    """Return a new `calculator` tool."""
    return FunctionTool(calculate, name="calculator", human_name="Calculator", timeout=5.0)
