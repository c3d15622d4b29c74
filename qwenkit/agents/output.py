"""Typed final answers: the schema the model is asked for, and the forgiving parse and validation of its reply."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import json5
import json_repair
from pydantic import TypeAdapter, ValidationError

from qwenkit.errors import ConfigError
from qwenkit.tools.base import ModelRetry

OutputValidator = Callable[[Any], Any | Awaitable[Any]]
"""Checks a validated output; returns it (or a replacement), or raises `ModelRetry`/``ValueError``."""

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
MAX_ANSWER_CHARS = 1_000_000
"""Longer answers are not parsed as JSON (json-repair on megabytes costs seconds)."""


class OutputSpec:
    """How one agent's answers become typed objects.

    Args:
        output_type: Anything pydantic can validate and describe with a JSON schema: a pydantic model, a
            dataclass, a TypedDict, ``list[int]``, ``int``...
        validator: Extra checks a schema cannot express (`OutputValidator`).

    Raises:
        ConfigError: pydantic cannot build a JSON schema for ``output_type``.
    """

    def __init__(self, output_type: Any, validator: OutputValidator | None = None) -> None:
        try:
            self.adapter: TypeAdapter[Any] = TypeAdapter(output_type)
            self.schema: dict[str, Any] = self.adapter.json_schema()
        except Exception as err:  # pydantic raises several kinds (PydanticSchemaGenerationError, TypeError, ...)
            raise ConfigError(f"output_type {output_type!r} is not a type pydantic can build a JSON schema for: "
                              f"{err}") from err
        self.output_type = output_type
        self.validator = validator
        self.name = getattr(output_type, "__name__", str(output_type))

    def instruction(self) -> str:
        """The text added to the system prompt that asks for a final answer matching the schema."""
        return (
            "When you give your final answer (not a tool call), reply with only a JSON value that matches this "
            f"JSON schema, and nothing else:\n{json.dumps(self.schema, ensure_ascii=False)}"
        )

    def response_format(self) -> dict[str, Any]:
        """OpenAI/vLLM structured output for the final answer (``response_format`` with ``json_schema``)."""
        return {"type": "json_schema", "json_schema": {"name": _schema_name(self.name), "schema": self.schema}}

    async def parse(self, text: str) -> tuple[Any, str | None]:
        """Read ``text`` as the typed output.

        Returns:
            The output and ``None``, or ``None`` and the errors to send back to the model.
        """
        value, err = _load_json(text)
        if err is not None:
            return None, err
        try:
            output = self.adapter.validate_python(value)
        except ValidationError as verr:
            return None, _errors(verr)
        if self.validator is not None:
            try:
                checked = self.validator(output)
                output = await checked if inspect.isawaitable(checked) else checked
            except ModelRetry as retry:
                return None, retry.message
            except (ValueError, AssertionError) as verr:
                return None, f"{type(verr).__name__}: {verr}"
        return output, None

    def retry_prompt(self, errors: str) -> str:
        """The user turn that sends validation errors back to the model."""
        return (f"Your final answer does not match the required JSON schema: {errors}\n"
                "Reply again with only the corrected JSON value.")


def _schema_name(name: str) -> str:
    clean = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    return clean or "output"


def _errors(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:20]:
        where = ".".join(str(p) for p in e["loc"]) or "(value)"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _load_json(text: str) -> tuple[Any, str | None]:
    """Parse an answer forgivingly: a fenced block or the bare text, then JSON, JSON5, json-repair."""
    text = text.strip()
    if len(text) > MAX_ANSWER_CHARS:
        return None, f"the answer is {len(text)} characters long; give only the JSON value"
    if m := _FENCE.search(text):
        text = m.group(1).strip()
    if not text:
        return None, "the answer is empty; give the JSON value"
    for loads in (json.loads, json5.loads):
        try:
            return loads(text), None
        except (ValueError, RecursionError):
            continue
    try:
        value = json_repair.loads(text)
    except (ValueError, RecursionError) as err:
        return None, f"the answer is not JSON ({type(err).__name__})"
    if value == "" or value is None:
        # A plain-text answer: accept it as a string value (valid when output_type is str-like).
        return text, None
    return value, None
