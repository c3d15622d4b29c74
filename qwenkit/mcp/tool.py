"""`MCPTool`: one tool of an MCP server as a qwenkit `Tool`, and the checks that build it from a listing.

The listing comes from an untrusted server: names must be what every prompt format and the MCP spec accept
(``[A-Za-z0-9_.-]``, at most 128 characters), descriptions are capped, and input schemas must be valid JSON
Schema objects of bounded size and depth. A tool that fails a check is skipped with a warning naming it; the
others stay usable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import jsonschema
import mcp_types as types
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from qwenkit._untrusted import MAX_JSON_DEPTH, cap_text, clean_json, clean_text, json_depth
from qwenkit.tools.base import ModelRetry, Tool, ToolContext, ToolOutput
from qwenkit.types import ToolSpec

if TYPE_CHECKING:
    from qwenkit.mcp.client import MCPServer

log = logging.getLogger("qwenkit.mcp")

MAX_DESCRIPTION_CHARS = 4000
"""Longest tool description kept (it goes into every prompt)."""
MAX_SCHEMA_CHARS = 100_000
"""Largest input schema accepted, as JSON text."""
MAX_TOOLS = 1000
"""Most tools taken from one server."""
VALIDATION_TIMEOUT_S = 5.0
"""Seconds argument validation may take; a schema whose regular expressions backtrack is not waited for."""

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _validator(name: str, schema: Any) -> Validator | str:
    """A validator for ``schema``, or why the schema is not acceptable."""
    if not isinstance(schema, dict):
        return "its input schema is not an object"
    if schema.get("type", "object") != "object":
        return f"its input schema has type {schema.get('type')!r}, not 'object'"
    if json_depth(schema) > MAX_JSON_DEPTH:
        return "its input schema is nested too deeply"
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError) as err:
        return f"its input schema is not JSON ({err})"
    if size > MAX_SCHEMA_CHARS:
        return f"its input schema is too large ({size} characters)"
    try:
        cls = validator_for(schema)
        cls.check_schema(schema)
    except SchemaError as err:
        return f"its input schema is not valid JSON Schema ({clean_text(err.message[:200])[0]})"
    return cls(schema)


def build_tools(server: MCPServer, listed: list[types.Tool]) -> list[MCPTool]:
    """Turn a server's tool listing into qwenkit tools, skipping (with a warning) the ones that fail a check."""
    tools: list[MCPTool] = []
    seen: set[str] = set()
    for item in listed:
        shown = clean_text(item.name[:80])[0]
        if len(tools) >= MAX_TOOLS:
            log.warning("MCP server %r lists more than %d tools; the rest are skipped", server.name, MAX_TOOLS)
            break
        if not _NAME.match(item.name):
            log.warning("MCP server %r: skipping tool %r: its name is not 1-128 letters, digits, '_', '-' or '.'",
                        server.name, shown)
            continue
        if item.name in seen:
            log.warning("MCP server %r: skipping tool %r: listed twice", server.name, shown)
            continue
        validator = _validator(item.name, item.input_schema)
        if isinstance(validator, str):
            log.warning("MCP server %r: skipping tool %r: %s", server.name, shown, validator)
            continue
        seen.add(item.name)
        full = f"{server.prefix}_{item.name}" if server.prefix else item.name
        description = cap_text(clean_text(item.description or "")[0], MAX_DESCRIPTION_CHARS, "description")
        spec = ToolSpec(
            name=full, description=description, parameters=clean_json(dict(item.input_schema))[0],
            human_name=clean_text((item.title or "")[:100])[0],
        )
        tools.append(MCPTool(server, item.name, spec, validator))
    return tools


def _error_text(err: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "(arguments)"
    return f"{where}: {clean_text(err.message[:300])[0]}"


class MCPTool(Tool):
    """A tool of an MCP server. Arguments are checked against the server's JSON schema before the call.

    The tool applies its time limit itself (``handles_timeout``): past `ToolContext.timeout` (else the
    server's default) the call is cancelled on the server, and the model is told so.

    Attributes:
        server: The server that runs the tool.
        remote_name: The tool's name on the server (``spec.name`` may carry the server's prefix).
    """

    handles_timeout = True

    def __init__(self, server: MCPServer, remote_name: str, spec: ToolSpec, validator: Validator) -> None:
        self.server = server
        self.remote_name = remote_name
        self.spec = spec
        self._validator = validator
        self.timeout = server.timeout

    def _check(self, args: dict[str, Any]) -> list[str]:
        errors = sorted(self._validator.iter_errors(args), key=lambda e: list(e.absolute_path))
        return [_error_text(e) for e in errors[:5]]

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        try:
            # In a thread with a deadline: a hostile schema's regular expression could backtrack for ever.
            async with asyncio.timeout(VALIDATION_TIMEOUT_S):
                problems = await asyncio.to_thread(self._check, args)
        except TimeoutError:
            log.warning("MCP tool %r: argument validation took over %g s; sending the arguments unchecked",
                        self.name, VALIDATION_TIMEOUT_S)
            problems = []
        if problems:
            raise ModelRetry(f"Error: invalid arguments for {self.name}: {'; '.join(problems)}")
        return await self.server.call(self.remote_name, args, ctx.timeout)
