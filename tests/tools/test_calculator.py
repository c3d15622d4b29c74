"""The calculator tool: exact answers, and every expression that would freeze the process refused up front."""

from __future__ import annotations

import asyncio
import math

import pytest

from qwenkit.tools import ModelRetry, ToolContext, ToolRegistry
from qwenkit.tools.builtin.calculator import (
    MAX_EXPRESSION_CHARS,
    MAX_FACTORIAL,
    MAX_INT_BITS,
    MAX_SHOWN_DIGITS,
    calculate,
    calculator_tool,
)
from qwenkit.types import ToolCall


def refusal(expression: str) -> str:
    with pytest.raises(ModelRetry) as info:
        calculate(expression)
    return info.value.message


@pytest.mark.parametrize(("expression", "expected"), [
    ("factorial(5) + 2**10", "1144"),
    ("2**100", str(2**100)),
    ("(3 + 4) * 5 // 2 % 7", "3"),
    ("7 / 2", "3.5"),
    ("-2**3", "-8"),
    ("round(2.567, 2)", "2.57"),
    ("round(123456, -3)", "123000"),
    ("round(7, -30000)", "0"),
    ("sqrt(16) + abs(-3) + log(e) + exp(0)", "9.0"),
    ("sin(0) + cos(0) + tan(0)", "1.0"),
    ("pi", repr(math.pi)),
    ("1 ** (10**30000)", "1"),
    ("(-1) ** (10**30000 + 1)", "-1"),
    ("2 ** -3", "0.125"),
    ("0x10 + 1e3", "1016.0"),
])
def test_exact_answers(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


@pytest.mark.parametrize(("attack", "says"), [
    ("round(1, -10**8)", "ndigits"),  # int.__round__ computes 10**(10**8): minutes with the GIL held
    ("round(1.5, 10**9)", "ndigits"),
    ("9**9**9", "too large"),
    ("2**(2**200)", "too large"),
    ("(9**30000) * (9**30000)", "too large"),
    ("(2**99999) * 2", "too large"),
    ("2**99999 + 2**99999", "too large"),
    ("factorial(10**6)", f"at most {MAX_FACTORIAL}"),
    ("factorial(factorial(20))", f"at most {MAX_FACTORIAL}"),
    # A chain of multiplications: each step squares the size; refused once it passes the bit limit.
    ("(((((((10**5)**2)**2)**2)**2)**2)**2)**2 * 10**60000 * 10**60000", "too large"),
    # Many operations on the largest integers: bounded by the work budget, not by the size checks.
    (" + ".join(["(9**31000) // (7**17000)"] * 40), "too much computation"),
    ("-" * 500 + "1", "nested too deeply"),
    ("1+" * 1000 + "1", "too long"),
    ("(" * 300 + "1" + ")" * 300, "not a valid expression"),  # Python's parser refuses it
], ids=lambda v: v[:40] if isinstance(v, str) else None)
def test_attack_expressions_are_refused_with_a_message(attack: str, says: str) -> None:
    assert says in refusal(attack)


@pytest.mark.parametrize(("expression", "says"), [
    ("1/0", "division by zero"),
    ("sqrt(-1)", "not defined"),
    ("log(0)", "not defined"),
    ("exp(1000)", "too large for a floating-point number"),
    ("2.0 ** 10**400", "too large for a floating-point number"),
    ("(-8) ** (1/3)", "complex"),
    ("round(1, 2, 3)", "round()"),
    ("factorial(2.5)", "factorial()"),
    ("__import__('os').system('true')", "unsupported"),
    ("'a' * 10**9", "unsupported"),
    ("[1] * 10**9", "unsupported"),
    ("x + 1", "unsupported"),
    ("True + 1", "unsupported"),
    ("1 +", "not a valid expression"),
    ("1\x00", "not a valid expression"),
    ("9" * 5000, "too long"),
], ids=lambda v: v[:40] if isinstance(v, str) else None)
def test_bad_expressions_are_clear_observations(expression: str, says: str) -> None:
    assert says in refusal(expression)


def test_expression_length_limit_counts_the_stripped_text() -> None:
    assert calculate(" " * 10 + "1" * 10 + " " * MAX_EXPRESSION_CHARS) == "1" * 10
    assert "too long" in refusal("1" + "+1" * MAX_EXPRESSION_CHARS)


def test_huge_results_show_leading_digits_and_length() -> None:
    shown = calculate(f"factorial({MAX_FACTORIAL})")
    assert shown.startswith("4.228577926605543e+16325") and "16326 digits" in shown
    assert calculate(f"10**{MAX_SHOWN_DIGITS - 1}") == "1" + "0" * (MAX_SHOWN_DIGITS - 1)
    assert calculate(f"-10**{MAX_SHOWN_DIGITS}").startswith(f"-1.000000000000000e+{MAX_SHOWN_DIGITS} ")
    assert calculate(f"10**{MAX_SHOWN_DIGITS + 1} - 1").startswith(f"9.999999999999999e+{MAX_SHOWN_DIGITS}")
    assert "30103 digits" in calculate(f"2**{MAX_INT_BITS - 1}")  # 2**99999 = 9.99...e+30102


def test_refusal_reaches_the_model_as_an_observation() -> None:
    registry = ToolRegistry([calculator_tool()])
    ctx = ToolContext(conversation_id="c", call_id="1")
    result = asyncio.run(registry.call(ToolCall(name="calculator", arguments={"expression": "round(1, -10**8)"}),
                                       ctx))
    assert not result.ok and "ndigits" in result.content
    ok = asyncio.run(registry.call(ToolCall(name="calculator", arguments={"expression": "6*7"}), ctx))
    assert ok.ok and ok.content == "42"
