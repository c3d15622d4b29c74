from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from qwenkit.tools import ToolContext, tool
from qwenkit.tools.schema import function_schema


def test_schema_from_hints_and_google_docstring() -> None:
    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int = 1) -> str:
        """Get the weather forecast.

        Longer explanation.

        Args:
            city: City name, e.g. Paris.
            unit: Temperature unit.
            days: How many days ahead.
        """
        return city

    s = function_schema(get_weather)
    assert s.description == "Get the weather forecast.\n\nLonger explanation."
    assert s.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris."},
            "unit": {"enum": ["celsius", "fahrenheit"], "type": "string", "default": "celsius",
                     "description": "Temperature unit."},
            "days": {"type": "integer", "default": 1, "description": "How many days ahead."},
        },
        "required": ["city"],
    }


class Point(BaseModel):
    x: float
    y: float


def test_nested_model_and_list_types() -> None:
    def area(points: list[Point], closed: bool | None = None) -> float:
        """Polygon area."""
        return 0.0

    s = function_schema(area)
    assert s.parameters["properties"]["points"]["items"] == {"$ref": "#/$defs/Point"}
    assert s.parameters["$defs"]["Point"]["required"] == ["x", "y"]
    assert s.parameters["required"] == ["points"]


def test_context_parameter_is_hidden_from_the_model() -> None:
    def f(q: str, ctx: ToolContext) -> str:
        return q

    s = function_schema(f)
    assert s.context_param == "ctx"
    assert list(s.parameters["properties"]) == ["q"]


def test_missing_hint_and_varargs_are_rejected() -> None:
    def no_hint(x):  # type: ignore[no-untyped-def]
        return x

    def var(*args: int) -> None:
        return None

    with pytest.raises(TypeError, match="needs a type hint"):
        function_schema(no_hint)
    with pytest.raises(TypeError, match=r"\*args"):
        function_schema(var)


def test_decorator_forms_and_dotted_name() -> None:
    @tool
    def plain(n: int) -> int:
        """Identity."""
        return n

    @tool(name="math.factorial", timeout=3)
    def fact(n: int) -> int:
        """Factorial of n."""
        return n

    assert plain.spec.name == "plain" and plain.spec.description == "Identity."
    assert fact.spec.name == "math.factorial" and fact.timeout == 3


def test_annotated_field_description_survives_a_docstring_without_one() -> None:
    def f(n: Annotated[int, Field(description="How many.", ge=0)], m: int = 2) -> int:
        """No Args section."""
        return n

    props = function_schema(f).parameters["properties"]
    assert props["n"] == {"type": "integer", "description": "How many.", "minimum": 0}
    assert props["m"] == {"type": "integer", "default": 2}
