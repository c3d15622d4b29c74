"""Request bodies: read within a size cap, validated into pydantic models, errors naming the field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

M = TypeVar("M", bound=BaseModel)


class HTTPProblem(Exception):
    """An error answered as ``{"error": message}`` with ``status`` (and ``fields`` for a 422)."""

    def __init__(self, status: int, message: str, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields


class NewConversation(BaseModel):
    """Body of ``POST /api/conversations`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=200)


class NewTurn(BaseModel):
    """Body of ``POST /api/conversations/{id}/turns``."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)


async def read_capped(request: Request, limit: int, what: str) -> bytes:
    """The whole body, or a 413 as soon as it passes ``limit`` bytes (nothing past it is held)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, f"{what} is {int(declared)} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, f"{what} is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(request: Request, model: type[M], limit: int, *, optional: bool = False) -> M:
    """Read a JSON body into ``model``; 422 names the field that is wrong (``body.prompt``)."""
    raw = await read_capped(request, limit, "the request body")
    if not raw.strip() and optional:
        return model()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise HTTPProblem(422, f"body: not valid JSON ({err})",
                          [{"loc": ["body"], "msg": "invalid JSON"}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        fields = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"]} for e in err.errors()[:20]]
        named = "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields[:5])
        raise HTTPProblem(422, named, fields) from None
