"""Server replies read as untrusted input: a whole body or SSE chunks become one clean `Completion`.

Every failure to read a reply (not UTF-8, not JSON, not a chat completion, no choices) is a `ModelError`
with a message naming the server and what was wrong, on both the plain and the streaming path. Text and
tool calls lose lone surrogates (`clean_text`), so a `Completion` can always be encoded as UTF-8; tool-call
arguments nested deeper than `MAX_JSON_DEPTH` become ``{}`` with an ``arguments_error``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from qwenkit._untrusted import MAX_JSON_DEPTH, clean_json, clean_text, json_depth
from qwenkit.errors import ModelError
from qwenkit.llm._openai.wire import text_depth
from qwenkit.llm.formats._json import parse_arguments
from qwenkit.types import Completion, ToolCall, Usage, new_call_id

log = logging.getLogger("qwenkit.llm.openai")

TOO_DEEP = f"the arguments are nested deeper than {MAX_JSON_DEPTH} levels; write a flatter object"
"""The ``arguments_error`` of a native call whose arguments are nested too deeply."""


class _Wire(BaseModel):
    # Unknown fields are dropped, not kept: a hostile server's extras never reach a serialiser.
    model_config = ConfigDict(extra="ignore")


class _Function(_Wire):
    name: str | None = None
    arguments: str | None = None


class _Call(_Wire):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: _Function | None = None


class _Message(_Wire):
    content: str | None = None
    tool_calls: list[_Call] | None = None
    # A reasoning parser's output: ``reasoning_content`` (vLLM before 0.11, llama.cpp, DeepSeek), ``reasoning``
    # (vLLM since). Only strings are taken; anything else a server sends there is ignored.
    reasoning_content: Any = None
    reasoning: Any = None

    @property
    def thinking(self) -> str:
        for value in (self.reasoning_content, self.reasoning):
            if isinstance(value, str) and value:
                return value
        return ""


class _Choice(_Wire):
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None
    stop_reason: Any = None  # vLLM: the stop word, or a token id (an int)


class _Usage(_Wire):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Body(_Wire):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None


def decode_json(data: bytes, where: str, what: str = "reply") -> dict[str, Any]:
    """Read one JSON object from the server; any other content is a `ModelError` saying what it was."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelError(f"the model server at {where} sent a {what} that is not UTF-8 "
                         f"(byte {err.start}: {data[err.start:err.start + 1]!r})") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise ModelError(f"the model server at {where} sent a {what} nested too deeply to read") from None
    except ValueError as err:
        raise ModelError(f"the model server at {where} sent a {what} that is not JSON ({err}): "
                         f"{_snippet(text)}") from None
    if not isinstance(value, dict):
        raise ModelError(f"the model server at {where} sent a {what} that is not a JSON object: {_snippet(text)}")
    return value


def server_error(value: dict[str, Any]) -> str | None:
    """The message of an ``{"error": ...}`` object a server sent in place of a reply, if it is one."""
    inner = value.get("error")
    if inner is None or value.get("choices"):
        return None
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        inner = inner["message"]
    if isinstance(inner, str):
        return _snippet(inner)
    if json_depth(inner) > MAX_JSON_DEPTH:  # the encoder would recurse
        return "(an error object nested too deeply to show)"
    return _snippet(json.dumps(inner, ensure_ascii=False)[:400])


def parse_body(data: bytes, content_type: str, where: str) -> Completion:
    """Turn a whole non-streamed reply body into a `Completion`."""
    if not data.strip():
        raise ModelError(f"the model server at {where} sent an empty reply ({content_type[:80] or 'no content type'})")
    try:
        value = decode_json(data, where)
    except ModelError as err:
        if "json" in content_type.lower():
            raise
        raise ModelError(f"{err} (content type {content_type[:80] or 'missing'}, not JSON)") from None
    said = server_error(value)
    if said is not None:
        raise ModelError(f"the model server at {where} answered with an error: {said}")
    body = _validate(value, where)
    if not body.choices:
        raise ModelError(f"the model server at {where} returned no choices")
    choice = body.choices[0]
    message = choice.message or _Message()
    calls = [(c.id, c.function.name or "", c.function.arguments or "")
             for c in message.tool_calls or [] if c.function is not None and c.type in (None, "function")]
    return build(message.content or "", calls, choice.finish_reason, choice.stop_reason, usage(body.usage),
                 message.thinking)


class StreamAssembler:
    """Collects SSE ``data:`` payloads into a `Completion`; `feed` returns the text delta to show.

    The reasoning delta of the last chunk fed (a reasoning parser's ``reasoning_content``) is `reasoning`.
    """

    def __init__(self, where: str) -> None:
        self._where = where
        self._text: list[str] = []
        self._thinking: list[str] = []
        self.reasoning = ""
        self._calls: dict[int, tuple[list[str], list[str], list[str]]] = {}  # id, name, argument pieces
        self._finish: str | None = None
        self._stop: Any = None
        self._usage = Usage()

    def feed(self, payload: bytes) -> str:
        """Take one chunk's JSON; raise `ModelError` for an error event or a chunk that is not one."""
        value = decode_json(payload, self._where, "stream chunk")
        said = server_error(value)
        if said is not None:
            raise ModelError(f"the model server at {self._where} reported an error mid-stream: {said}")
        chunk = _validate(value, self._where)
        if chunk.usage is not None:
            self._usage = usage(chunk.usage)
        delta = ""
        self.reasoning = ""
        for choice in (chunk.choices or [])[:1]:
            self._finish = choice.finish_reason or self._finish
            self._stop = choice.stop_reason or self._stop
            part = choice.delta or choice.message or _Message()
            for tc in part.tool_calls or []:
                # Pieces are joined once at the end: `+=` on each delta would be quadratic in the reply.
                ids, names, arguments = self._calls.setdefault(tc.index, ([], [], []))
                if tc.id:
                    ids.append(tc.id)
                if tc.function is not None:
                    names.append(tc.function.name or "")
                    arguments.append(tc.function.arguments or "")
            if part.content:
                self._text.append(part.content)
                delta, _ = clean_text(part.content)
            if part.thinking:
                self._thinking.append(part.thinking)
                self.reasoning, _ = clean_text(part.thinking)
        return delta

    def completion(self) -> Completion:
        """The whole reply as it stands."""
        calls = [(ids[-1] if ids else None, "".join(names), "".join(arguments))
                 for _, (ids, names, arguments) in sorted(self._calls.items())]
        return build("".join(self._text), calls, self._finish, self._stop, self._usage, "".join(self._thinking))


def build(text: str, calls: Sequence[tuple[str | None, str, str]], finish: str | None, stop: Any,
          used: Usage, reasoning: str = "") -> Completion:
    """A `Completion` from what the server sent, cleaned: encodable text, bounded arguments."""
    text, dirty = clean_text(text)
    reasoning, dirty_reasoning = clean_text(reasoning)
    dirty |= dirty_reasoning
    tool_calls = []
    for call_id, name, raw in calls:
        call, hit = tool_call(call_id, name, raw)
        tool_calls.append(call)
        dirty |= hit
    if dirty:
        log.warning("the model server's reply had lone surrogates (not encodable as UTF-8); "
                    "they were replaced with U+FFFD")
    stop_word = clean_text(stop)[0] if isinstance(stop, str) else None
    return Completion(text=text, tool_calls=tuple(tool_calls), finish_reason=clean_text(finish)[0] if finish else None,
                      stop_word=stop_word, usage=used, reasoning=reasoning)


def tool_call(call_id: str | None, name: str, raw: str) -> tuple[ToolCall, bool]:
    """One native tool call, cleaned; also whether lone surrogates were replaced in it."""
    raw, dirty_raw = clean_text(raw)
    name, dirty_name = clean_text(name)
    cid, dirty_id = clean_text(call_id or new_call_id())
    dirty = dirty_raw or dirty_name or dirty_id
    if text_depth(raw) > MAX_JSON_DEPTH:
        return ToolCall(id=cid, name=name, raw_arguments=raw, arguments_error=TOO_DEEP), dirty
    args, error = parse_arguments(raw)
    if json_depth(args) > MAX_JSON_DEPTH:  # a repair may nest where the text's brackets did not show it
        return ToolCall(id=cid, name=name, raw_arguments=raw, arguments_error=TOO_DEEP), dirty
    args, dirty_args = clean_json(args)  # a JSON escape such as "\ud800" decodes to a lone surrogate
    return ToolCall(id=cid, name=name, arguments=args, raw_arguments=raw, arguments_error=error), dirty or dirty_args


def usage(value: _Usage | None) -> Usage:
    """Token counts; some servers send ``null`` for a field or no usage at all."""
    if value is None:
        return Usage()
    return Usage(prompt_tokens=max(0, value.prompt_tokens or 0), completion_tokens=max(0, value.completion_tokens or 0))


def _validate(value: dict[str, Any], where: str) -> _Body:
    try:
        return _Body.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "the body"
        raise ModelError(f"the model server at {where} sent a reply that is not a chat completion: "
                         f"{at}: {first['msg']}") from None


def _snippet(text: str, limit: int = 200) -> str:
    clean, _ = clean_text(text[:limit])
    return repr(clean) + ("..." if len(text) > limit else "")
