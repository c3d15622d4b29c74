"""Turn an MCP ``CallToolResult`` into a qwenkit `ToolOutput`.

A server is untrusted: its text is cleaned and capped, images are size-checked and written to the server's
outputs folder (kept under a byte budget), and everything the model cannot read (audio, binary resources) is
named instead of shown.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from pathlib import Path
from typing import Any

import mcp_types as types

from qwenkit._untrusted import MAX_JSON_DEPTH, cap_text, clean_json, clean_text, json_depth
from qwenkit.sandbox.images import OutputsBudget
from qwenkit.tools.base import ToolOutput

MAX_TEXT_CHARS = 100_000
"""Most characters of observation text kept from one result."""
MAX_IMAGES = 16
"""Most images kept from one result."""
MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Largest image (decoded) written to disk."""

_EXTENSIONS = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
    "image/svg+xml": ".svg", "image/bmp": ".bmp",
}


def _save_image(block: types.ImageContent, folder: Path, budget: OutputsBudget | None) -> tuple[str | None, str]:
    """Write one image block to ``folder``; the path (or ``None``) and a note for the observation."""
    mime = block.mime_type.lower().split(";")[0].strip()
    ext = _EXTENSIONS.get(mime)
    if ext is None:
        return None, f"[image of unsupported type {clean_text(mime[:60])[0]!r} not kept]"
    if len(block.data) * 3 // 4 > MAX_IMAGE_BYTES:  # check before decoding: base64 is 4/3 the size
        return None, f"[image over {MAX_IMAGE_BYTES // (1024 * 1024)} MiB not kept]"
    try:
        raw = base64.b64decode(block.data, validate=True)
    except (binascii.Error, ValueError):
        return None, "[image with invalid base64 data not kept]"
    if budget is not None and not budget.make_room(len(raw)):
        return None, "[image larger than the outputs budget not kept]"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"mcp-{uuid.uuid4().hex[:12]}{ext}"
    path.write_bytes(raw)
    return str(path), ""


def _resource_text(block: types.EmbeddedResource) -> str:
    res = block.resource
    if isinstance(res, types.TextResourceContents):
        return f"[resource {res.uri}]\n{res.text}"
    return f"[binary resource {res.uri} ({res.mime_type or 'unknown type'}) not shown]"


def to_output(result: types.CallToolResult, folder: Path, budget: OutputsBudget | None) -> ToolOutput:
    """Convert a tool result: text blocks joined, images saved, structured content kept as ``data``.

    Args:
        result: The server's result.
        folder: Where images are written.
        budget: The byte budget of the outputs folder, if any.

    Returns:
        The output; ``is_error`` mirrors the result's ``isError``. When the result has no text but
        structured content, the structured content (as JSON) is the observation.
    """
    parts: list[str] = []
    images: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent):
            if len(images) >= MAX_IMAGES:
                parts.append(f"[more than {MAX_IMAGES} images: the rest were not kept]")
                break
            path, note = _save_image(block, folder, budget)
            if path is not None:
                images.append(path)
                parts.append(f"![image-{len(images)}]({path})")
            else:
                parts.append(note)
        elif isinstance(block, types.EmbeddedResource):
            parts.append(_resource_text(block))
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link {block.uri}{f' ({block.name})' if block.name else ''}]")
        elif isinstance(block, types.AudioContent):
            parts.append(f"[audio ({block.mime_type}) not shown]")
        else:
            parts.append(f"[{type(block).__name__} not shown]")
    data: Any = None
    if result.structured_content is not None:
        if json_depth(result.structured_content) > MAX_JSON_DEPTH:
            parts.append("[structured content nested too deeply: not kept]")
        else:
            data = clean_json(result.structured_content)[0]
            if not any(isinstance(b, types.TextContent) for b in result.content):
                parts.append(json.dumps(data, ensure_ascii=False, default=str))
    text = "\n".join(p for p in parts if p) or ("(error with no message)" if result.is_error else "(no output)")
    text = cap_text(clean_text(text)[0], MAX_TEXT_CHARS, "tool output")
    return ToolOutput(text=text, images=images, data=data, is_error=bool(result.is_error))
