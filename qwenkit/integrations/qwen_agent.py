"""Qwen-Agent tools both ways (the extra ``qwenkit[qwen-agent]``, tested with ``qwen-agent==0.0.34``).

- `from_qwen_agent` wraps a Qwen-Agent tool (any ``qwen_agent.tools.BaseTool``, or any object with its
  ``name``, ``description``, ``parameters`` and ``call(params: str, **kwargs)``) as a qwenkit `Tool`, so a
  qwenkit `Agent` can call it. Wrapping needs no Qwen-Agent import: the tool object brings its own.
- `QwenkitCodeInterpreter` is a Qwen-Agent tool backed by qwenkit's bubblewrap-sandboxed code interpreter,
  a drop-in for Qwen-Agent's Docker-based ``code_interpreter``::

      from qwen_agent.agents import Assistant
      from qwenkit.integrations.qwen_agent import QwenkitCodeInterpreter

      with QwenkitCodeInterpreter() as ci:
          bot = Assistant(llm={...}, function_list=[ci])

Importing this module imports no Qwen-Agent code and registers nothing in Qwen-Agent's global tool
registry; Qwen-Agent is imported when `QwenkitCodeInterpreter` is first used (``from ... import
QwenkitCodeInterpreter``), and a missing Qwen-Agent then raises an `ImportError` naming the extra. (Importing
Qwen-Agent itself installs its own ``atexit`` and SIGINT/SIGTERM handlers; that is Qwen-Agent's doing.)
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from qwenkit._untrusted import cap_text
from qwenkit.errors import ConfigError
from qwenkit.tools.base import ModelRetry, Tool, ToolContext, ToolOutput
from qwenkit.types import ToolSpec

if TYPE_CHECKING:
    from qwenkit.integrations._qwen_agent_ci import QwenkitCodeInterpreter

__all__ = ["EXTRA_HINT", "QwenAgentTool", "QwenAgentToolLike", "QwenkitCodeInterpreter", "from_qwen_agent",
           "observation_from_qwen_agent", "parameters_schema"]

EXTRA_HINT = "install it with: pip install 'qwenkit[qwen-agent]' (tested with qwen-agent==0.0.34)"
"""How to get Qwen-Agent, for error messages."""

DEFAULT_MAX_CHARS = 100_000
"""Characters of a wrapped tool's text output kept for the model by default (the rest is cut, with a note)."""

# Qwen-Agent's older list-style parameters sometimes name Python types instead of JSON-schema ones.
_TYPE_NAMES = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
    "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "array": "array",
    "dict": "object", "object": "object", "null": "null",
}
_MEDIA_KINDS = ("image", "file", "audio", "video")


@runtime_checkable
class QwenAgentToolLike(Protocol):
    """What `from_qwen_agent` needs of a tool: the public surface of Qwen-Agent's ``BaseTool``."""

    name: str
    description: str
    parameters: Any

    def call(self, params: str, **kwargs: Any) -> Any: ...


def parameters_schema(tool_name: str, parameters: Any) -> dict[str, Any]:
    """Turn a Qwen-Agent tool's ``parameters`` into the JSON schema of its arguments object.

    Qwen-Agent accepts two styles: a JSON-schema dict (``{"type": "object", "properties": ...,
    "required": [...]}``), used as it is, and the older list of parameter dicts
    (``[{"name": "city", "type": "string", "description": ..., "required": True}]``), converted: each entry
    becomes a property (its keys other than ``name`` and ``required`` are kept; Python type names such as
    ``str`` become JSON-schema ones) and ``required: True`` entries are listed as required.

    Args:
        tool_name: The tool's name, for error messages.
        parameters: The tool's ``parameters`` attribute (``None`` or empty: no arguments).

    Returns:
        A new JSON-schema dict of type ``object``.

    Raises:
        ConfigError: The parameters are neither style, or an entry has no name or repeats one.
    """
    if parameters is None or (isinstance(parameters, list | tuple | Mapping) and not parameters):
        return {"type": "object", "properties": {}}
    if isinstance(parameters, Mapping):
        schema = copy.deepcopy(dict(parameters))
        schema.setdefault("type", "object")
        if schema["type"] != "object":
            raise ConfigError(
                f"Qwen-Agent tool {tool_name!r}: parameters must describe an object, not type {schema['type']!r}"
            )
        props = schema.setdefault("properties", {})
        required = schema.get("required", [])
        if not isinstance(props, Mapping):
            raise ConfigError(f"Qwen-Agent tool {tool_name!r}: parameters.properties must be an object")
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ConfigError(f"Qwen-Agent tool {tool_name!r}: parameters.required must be a list of names")
        return schema
    if not isinstance(parameters, list | tuple):
        raise ConfigError(
            f"Qwen-Agent tool {tool_name!r}: parameters must be a JSON-schema dict or a list of parameter "
            f"dicts, not {type(parameters).__name__}"
        )
    properties: dict[str, Any] = {}
    required_names: list[str] = []
    for index, entry in enumerate(parameters, 1):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(entry, Mapping) or not isinstance(name, str) or not name:
            raise ConfigError(f"Qwen-Agent tool {tool_name!r}: parameter #{index} is not a dict with a 'name'")
        if name in properties:
            raise ConfigError(f"Qwen-Agent tool {tool_name!r}: parameter {name!r} is listed twice")
        prop = {key: copy.deepcopy(value) for key, value in entry.items() if key not in ("name", "required")}
        kind = prop.get("type")
        if isinstance(kind, str):
            prop["type"] = _TYPE_NAMES.get(kind.strip().lower(), kind)
        properties[name] = prop
        if entry.get("required"):
            required_names.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required_names:
        schema["required"] = required_names
    return schema


def _content_item(item: Any) -> tuple[str, str] | None:
    """``(kind, value)`` of a Qwen-Agent ``ContentItem`` (or a dict shaped like one), else ``None``."""
    get = getattr(item, "get_type_and_value", None)
    if callable(get):
        try:
            pair = get()
        except Exception:  # a ContentItem that breaks its own contract: show it as JSON instead
            return None
        if not (isinstance(pair, tuple) and len(pair) == 2 and pair[1] is not None):
            return None
        return str(pair[0]), str(pair[1])
    if isinstance(item, Mapping):
        for kind in ("text", *_MEDIA_KINDS):
            value = item.get(kind)
            if isinstance(value, str):
                return kind, value
    return None


def _local_file(value: str) -> str | None:
    """The path of an existing local file named by ``value`` (a path or a ``file://`` URL), else ``None``."""
    path = value.removeprefix("file://")
    if "://" in path or path.startswith("data:"):
        return None
    return path if os.path.isfile(path) else None


def _media_line(kind: str, value: str, index: int) -> str:
    if value.startswith("data:"):  # an inline base64 payload: the model cannot use the bytes as text
        return f"[{kind} {index}: inline data, {len(value)} characters, not shown]"
    if kind == "image":
        return f"![image-{index}]({value})"
    return f"[{kind} {index}: {value}]"


def observation_from_qwen_agent(value: Any, *, max_chars: int | None = DEFAULT_MAX_CHARS) -> ToolOutput:
    """Turn what a Qwen-Agent tool's ``call`` returned into a qwenkit `ToolOutput`.

    - ``str``: the text itself.
    - a list of ``ContentItem`` (Qwen-Agent's multimodal result; dicts with a ``text``/``image``/``file``/
      ``audio``/``video`` key are read the same way): text items in order; each image as a
      ``![image-N](url)`` line, and images that are local files also in `ToolOutput.images`; other media as a
      ``[kind N: url]`` line. Inline ``data:`` payloads are described, not pasted.
    - anything else (a dict, a number, ``None``): JSON, as Qwen-Agent itself would send it.

    Args:
        value: The return value.
        max_chars: Characters of text kept (``None``: all).
    """
    images: list[str] = []
    if isinstance(value, str):
        text = value
    elif isinstance(value, list | tuple) and value and all(_content_item(item) is not None for item in value):
        parts: list[str] = []
        media = 0
        for item in value:
            kind, content = _content_item(item) or ("text", "")
            if kind == "text":
                parts.append(content)
                continue
            media += 1
            parts.append(_media_line(kind, content, media))
            if kind == "image" and (path := _local_file(content)):
                images.append(path)
        text = "\n\n".join(p for p in parts if p)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    if max_chars is not None:
        text = cap_text(text, max_chars, "tool output")
    return ToolOutput(text=text, images=images)


class QwenAgentTool(Tool):
    """A Qwen-Agent tool as a qwenkit `Tool`; made by `from_qwen_agent`.

    Each call sends the validated arguments to the tool's ``call`` as a JSON string (what Qwen-Agent's own
    agents send), in a worker thread so the event loop keeps running. What it raises reaches the model as
    an observation (the registry's rule for every tool); what it returns is converted by
    `observation_from_qwen_agent`.

    Attributes:
        qwen_tool: The wrapped Qwen-Agent tool.
        call_kwargs: Extra keyword arguments given to every ``call``.
        max_chars: Characters of text output kept for the model.
    """

    def __init__(
        self, qwen_tool: QwenAgentToolLike, *, name: str | None = None, description: str | None = None,
        timeout: float | None = None, sequential: bool = False, call_kwargs: Mapping[str, Any] | None = None,
        max_chars: int | None = DEFAULT_MAX_CHARS,
    ) -> None:
        tool_name = name if name is not None else getattr(qwen_tool, "name", None)
        if not isinstance(tool_name, str) or not tool_name.strip():
            raise ConfigError(f"Qwen-Agent tool {type(qwen_tool).__name__} has no name")
        call = getattr(qwen_tool, "call", None)
        if not callable(call):
            raise ConfigError(f"Qwen-Agent tool {tool_name!r} has no call(params) method")
        if timeout is not None and not timeout > 0:
            raise ConfigError(f"Qwen-Agent tool {tool_name!r}: timeout must be positive, not {timeout!r}")
        desc = description if description is not None else getattr(qwen_tool, "description", "")
        human = getattr(qwen_tool, "name_for_human", "")  # Qwen-Agent's cfg-provided display name
        self.qwen_tool = qwen_tool
        self.spec = ToolSpec(
            name=tool_name,
            description=desc if isinstance(desc, str) else str(desc),
            parameters=parameters_schema(tool_name, getattr(qwen_tool, "parameters", None)),
            human_name=human if isinstance(human, str) and human != tool_name else "",
        )
        self.timeout = timeout
        self.sequential = sequential
        self.call_kwargs = dict(call_kwargs or {})
        self.max_chars = max_chars

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        missing = [r for r in self.spec.parameters.get("required", []) if r not in args]
        if missing:
            names = ", ".join(repr(m) for m in missing)
            raise ModelRetry(f"Error: {self.name} needs the argument(s) {names}; call it again with them.")
        params = json.dumps(args, ensure_ascii=False)
        # Qwen-Agent tools are synchronous (files, HTTP, CPU): a thread keeps the loop and other calls going.
        # A thread cannot be killed: past the registry's timeout its result is dropped, not its work.
        value = await asyncio.to_thread(self.qwen_tool.call, params, **self.call_kwargs)
        return observation_from_qwen_agent(value, max_chars=self.max_chars)


def from_qwen_agent(
    tool: QwenAgentToolLike, *, name: str | None = None, description: str | None = None,
    timeout: float | None = None, sequential: bool = False, call_kwargs: Mapping[str, Any] | None = None,
    max_chars: int | None = DEFAULT_MAX_CHARS,
) -> QwenAgentTool:
    """Wrap a Qwen-Agent tool (an instance of ``qwen_agent.tools.BaseTool`` or alike) as a qwenkit tool.

    Example:
        >>> from qwen_agent.tools import Storage
        >>> agent = Agent(model, tools=[from_qwen_agent(Storage({"storage_root_path": "/tmp/kv"}))])

    Args:
        tool: The Qwen-Agent tool instance (not its class, and not a registry name).
        name: The name the model sees (default: the tool's ``name``), e.g. to avoid a clash.
        description: What the model is told the tool does (default: the tool's ``description``).
        timeout: Seconds a call may take before the model is told it timed out (``None``: no limit). The
            tool's thread keeps running to its end; only its result is dropped.
        sequential: Several calls of one turn run one after another, in the order written (tools whose
            calls depend on each other, such as a key-value store).
        call_kwargs: Extra keyword arguments for every ``call`` (e.g. ``files=[...]``).
        max_chars: Characters of text output kept for the model (``None``: all).

    Returns:
        The qwenkit tool; its schema comes from the tool's ``parameters`` in either Qwen-Agent style (see
        `parameters_schema`).

    Raises:
        ConfigError: The tool has no name or ``call``, or its parameters are not a schema Qwen-Agent accepts.
    """
    return QwenAgentTool(
        tool, name=name, description=description, timeout=timeout, sequential=sequential,
        call_kwargs=call_kwargs, max_chars=max_chars,
    )


def __getattr__(attr: str) -> Any:
    # `QwenkitCodeInterpreter` subclasses Qwen-Agent's BaseTool, so it can only exist once Qwen-Agent is
    # imported: build it on first use (PEP 562) instead of when this module is imported.
    if attr != "QwenkitCodeInterpreter":
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    try:
        module = importlib.import_module("qwenkit.integrations._qwen_agent_ci")
    except ImportError as exc:
        missing = exc.name or "a dependency"
        raise ImportError(
            f"QwenkitCodeInterpreter needs Qwen-Agent, which could not be imported ({missing} is missing); "
            f"{EXTRA_HINT}"
        ) from exc
    return module.QwenkitCodeInterpreter
