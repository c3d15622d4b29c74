"""Deterministic public test models and a guard against real network calls.

- `ScriptedModel` replays given replies in order and can assert that every one was used.
- `FunctionModel` calls your function to write each reply.
- `TestModel` writes a valid call for every tool it is offered, arguments generated from each tool's
  JSON schema, in the prompt format you choose; then a final answer holding what the tools returned.

Use them to test agents and tools without a server::

    model = ScriptedModel(['✿FUNCTION✿: add\\n✿ARGS✿: {"a": 1, "b": 2}', "✿RETURN✿: 3"])
    result = Agent(model, tools=[add], format="qwen").run("1+2?")
    assert model.requests[1].messages[-1].content.endswith("✿RESULT✿: 3\\n✿RETURN✿")
    model.assert_all_used()
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import itertools
import json
import math
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest, StreamChunk
from qwenkit.llm.formats import get_format
from qwenkit.llm.formats.base import PromptFormat
from qwenkit.llm.stops import apply_stop
from qwenkit.types import (
    AssistantMessage,
    Completion,
    Message,
    ToolCall,
    ToolMessage,
    ToolSpec,
    Usage,
    UserMessage,
)


def _as_completion(reply: str | Completion, request: ChatRequest, apply_stops: bool) -> Completion:
    if isinstance(reply, Completion):
        return reply
    text, word = apply_stop(reply, request.stop) if apply_stops else (reply, None)
    usage = Usage(
        prompt_tokens=sum(len(getattr(m, "content", "")) for m in request.messages) // 4,
        completion_tokens=max(1, len(text) // 4),
    )
    return Completion(text=text, finish_reason="stop", stop_word=word, usage=usage)


async def _chunks(completion: Completion, size: int) -> AsyncIterator[StreamChunk]:
    for i in range(0, len(completion.text), size):
        yield StreamChunk(delta=completion.text[i : i + size])
    yield StreamChunk(completion=completion)


class ScriptedModel:
    """Replays given replies in order and records every request it received.

    Use it as a context manager (``with`` or ``async with``) to check, when the block ends without an
    error, that every reply was used; or call `assert_all_used` yourself.

    Args:
        replies: Reply texts (or whole `Completion` objects, e.g. with native tool calls).
        name: Model name reported.
        apply_stops: Cut each text reply at the request's stop words, as a real server would.
        chunk_size: Characters per streamed delta.
        strict: `aclose` (which ``async with Agent(...)`` calls) also asserts that every reply was used.

    Attributes:
        requests: Every `ChatRequest` received, in order.
        closed: Whether `aclose` was called.

    Example:
        >>> with ScriptedModel(["Hello."]) as model:
        ...     Agent(model).run("Hi")
    """

    def __init__(
        self, replies: Iterable[str | Completion], *, name: str = "scripted", apply_stops: bool = True,
        chunk_size: int = 4, strict: bool = False,
    ) -> None:
        self._replies = list(replies)
        self._next = 0
        self._name = name
        self.apply_stops = apply_stops
        self.chunk_size = chunk_size
        self.strict = strict
        self.requests: list[ChatRequest] = []
        self.closed = False

    @property
    def name(self) -> str:
        """The model name reported."""
        return self._name

    @property
    def unused(self) -> list[str | Completion]:
        """The replies not yet given, in order."""
        return self._replies[self._next :]

    def assert_all_used(self) -> None:
        """Check that every scripted reply was given.

        Raises:
            AssertionError: Some were not; the message lists them with their positions.
        """
        if not self.unused:
            return
        listed = "; ".join(f"#{self._next + k + 1}: {_short(r)}" for k, r in enumerate(self.unused))
        raise AssertionError(
            f"{self.name}: {len(self.unused)} of {len(self._replies)} scripted replies were not used: {listed}"
        )

    def _take(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if self._next >= len(self._replies):
            raise ModelError(f"ScriptedModel ran out of replies after {len(self._replies)}")
        reply = self._replies[self._next]
        self._next += 1
        return _as_completion(reply, request, self.apply_stops)

    async def complete(self, request: ChatRequest) -> Completion:
        """Give the next scripted reply (cut at the request's stop words)."""
        return self._take(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Give the next scripted reply in ``chunk_size`` pieces."""
        return _chunks(self._take(request), self.chunk_size)

    async def aclose(self) -> None:
        """Mark the model closed; with ``strict``, also `assert_all_used`. Idempotent."""
        self.closed = True
        if self.strict:
            self.assert_all_used()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:  # an error in the block is the more useful report
            self.assert_all_used()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _short(reply: str | Completion, limit: int = 80) -> str:
    text = repr(reply.text if isinstance(reply, Completion) and not reply.tool_calls else reply)
    return text if len(text) <= limit else text[: limit - 1] + "…"


ReplyFunction = Callable[[ChatRequest], "str | Completion | Awaitable[str | Completion]"]


class FunctionModel:
    """Calls a function (sync or async) to write each reply; the function sees the whole request.

    Args:
        fn: Takes the `ChatRequest`, returns reply text or a `Completion`.
        name: Model name reported.
        apply_stops: Cut text replies at the request's stop words.

    Attributes:
        requests: Every `ChatRequest` received, in order.
        closed: Whether `aclose` was called.
    """

    def __init__(self, fn: ReplyFunction, *, name: str = "function", apply_stops: bool = True) -> None:
        self.fn = fn
        self._name = name
        self.apply_stops = apply_stops
        self.requests: list[ChatRequest] = []
        self.closed = False

    @property
    def name(self) -> str:
        """The model name reported."""
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        """Return what the function writes for ``request``."""
        self.requests.append(request)
        reply: Any = self.fn(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return _as_completion(reply, request, self.apply_stops)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Return what the function writes, in 4-character pieces."""
        async for chunk in _chunks(await self.complete(request), 4):
            yield chunk

    async def aclose(self) -> None:
        """Mark the model closed. Idempotent."""
        self.closed = True


# ------------------------------------------------------------------------------------------ TestModel


@runtime_checkable
class _CallWriter(Protocol):
    """A text format that writes tool calls the way a model would (``render_calls``)."""

    def render_calls(self, calls: Sequence[ToolCall]) -> str: ...


ToolLike = ToolSpec | Mapping[str, Any] | Any
"""A `ToolSpec`, an OpenAI tool definition, or anything with a ``spec`` (a `Tool`, an ``@tool`` function)."""


class TestModel:
    """Calls every tool it is offered with arguments made from each tool's schema, then answers.

    Modelled on pydantic-ai's ``TestModel``: no script to write, yet every tool is called through the
    whole stack (prompt format, parser, argument validation, the tool itself).

    - **First reply** of a turn: one call per tool offered (or per name in ``call_tools``), each with
      arguments generated by `example_arguments` from the tool's JSON schema. With a text format the
      reply is the format's own call text (``fmt.render_calls(calls)``); with ``native`` it is
      `Completion.tool_calls`.
    - **Next reply** (the last assistant turn made calls): a final answer, ``final_text`` if given, else
      JSON ``{"called": [names], "observations": [...]}``. With ``native`` the observations are the
      tool messages' contents; with a text format, where results are written into the prompt text, it
      is the one string the format wrote after the calls.

    The native format sends the tools with each request. A text format folds them into the prompt
    text, so give them to the model too: ``TestModel("nous", tools=[add])``.

    Args:
        format: The prompt format's name or object; must match the agent's.
        tools: The tools for text formats (`ToolSpec`, OpenAI definition, or a `Tool` / ``@tool``).
        call_tools: ``"all"``, or the names of the tools to call (in the order given).
        final_text: The final answer to give instead of the JSON summary.
        name: Model name reported.
        chunk_size: Characters per streamed delta.

    Attributes:
        requests: Every `ChatRequest` received, in order.
        closed: Whether `aclose` was called.

    Example:
        >>> model = TestModel("nous", tools=[add])
        >>> result = Agent(model, tools=[add], format="nous").run("1+2?")
        >>> json.loads(result.answer)["called"]
        ['add']
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        format: str | PromptFormat = "nous",
        *,
        tools: Sequence[ToolLike] | None = None,
        call_tools: Sequence[str] | Literal["all"] = "all",
        final_text: str | None = None,
        name: str = "test",
        chunk_size: int = 4,
    ) -> None:
        self.format: PromptFormat = get_format(format) if isinstance(format, str) else format
        self.tools = [_as_spec(t) for t in tools] if tools is not None else None
        self.call_tools = call_tools
        self.final_text = final_text
        self.chunk_size = chunk_size
        self._name = name
        self._ids = itertools.count(1)
        self.requests: list[ChatRequest] = []
        self.closed = False

    @property
    def name(self) -> str:
        """The model name reported."""
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        """Call the tools (first reply of a turn) or answer (after calls)."""
        self.requests.append(request)
        return self._reply(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """As `complete`, the text in ``chunk_size`` pieces."""
        self.requests.append(request)
        return _chunks(self._reply(request), self.chunk_size)

    async def aclose(self) -> None:
        """Mark the model closed. Idempotent."""
        self.closed = True

    # The replies.

    def _reply(self, request: ChatRequest) -> Completion:
        last = _last_assistant(request.messages)
        if last is not None and self._made_calls(last[1]):
            return self._answer(request, last)
        calls = self._calls(request)
        if not calls:
            return self._answer(request, None)
        usage = Usage(prompt_tokens=_size(request.messages), completion_tokens=len(calls) * 8)
        if request.tools is not None:  # the native format: the server's own tool_calls
            return Completion(tool_calls=tuple(calls), finish_reason="tool_calls", usage=usage)
        if not isinstance(self.format, _CallWriter):
            raise ModelError(f"TestModel: the {self.format.name!r} format cannot write calls as text "
                             "(it has no render_calls)")
        return Completion(text=self.format.render_calls(calls), finish_reason="stop", usage=usage)

    def _offered(self, request: ChatRequest) -> list[ToolSpec]:
        if request.tools is not None:
            return [_as_spec(t) for t in request.tools]
        return list(self.tools or [])

    def _chosen(self, request: ChatRequest) -> list[ToolSpec]:
        offered = self._offered(request)
        if self.call_tools == "all":
            return offered
        by_name = {s.name: s for s in offered}
        missing = [n for n in self.call_tools if n not in by_name]
        if missing:
            raise ModelError(f"TestModel: asked to call {missing}, but the tools offered are {sorted(by_name)}")
        return [by_name[n] for n in self.call_tools]

    def _made_calls(self, message: AssistantMessage) -> bool:
        return bool(message.tool_calls) or bool(self.format.parse(message.content).tool_calls)

    def _calls(self, request: ChatRequest) -> list[ToolCall]:
        """The calls of a first reply (the same every time for the same tools: ids aside, deterministic)."""
        return [
            ToolCall(id=f"call_test_{next(self._ids)}", name=spec.name, arguments=args,
                     raw_arguments=json.dumps(args, ensure_ascii=False))
            for spec in self._chosen(request)
            for args in [example_arguments(spec.parameters)]
        ]

    def _answer(self, request: ChatRequest, last: tuple[int, AssistantMessage] | None) -> Completion:
        text = self.final_text
        if text is None:
            called: list[str] = []
            observations: list[str] = []
            if last is not None:
                index, message = last
                later = request.messages[index + 1 :]
                if message.tool_calls:  # native: the results are tool messages
                    called = [c.name for c in message.tool_calls]
                    observations = [m.content for m in later if isinstance(m, ToolMessage)]
                else:
                    calls = self._calls(request)
                    called = [c.name for c in calls]
                    observations = self._read_results(calls, request.messages[index:])
            text = json.dumps({"called": called, "observations": observations}, ensure_ascii=False)
        usage = Usage(prompt_tokens=_size(request.messages), completion_tokens=max(1, len(text) // 4))
        return Completion(text=text, finish_reason="stop", usage=usage)

    def _read_results(self, calls: Sequence[ToolCall], tail: Sequence[Message]) -> list[str]:
        """Read the tool results a text format wrote into the prompt, without knowing its markers.

        The format renders the same calls with placeholder results; the text around each placeholder
        becomes a pattern that finds the real results in ``tail`` (the last assistant turn onward).
        Returns ``[]`` when the pattern does not match.
        """
        marks = [f"\x00{k}\x00" for k in range(len(calls))]
        probe = self.format.render(
            [UserMessage(content="?"), AssistantMessage(tool_calls=tuple(calls)),
             *(ToolMessage(tool_call_id=c.id, name=c.name, content=m) for c, m in zip(calls, marks, strict=True))],
            list(self.tools or []),  # with tools, as the run renders them (without, calls are written as prose)
        ).messages
        last = _last_assistant(probe)
        probe_text = _flatten(probe[last[0] :] if last is not None else probe)
        if not all(m in probe_text for m in marks):
            return []
        pieces = re.split("|".join(map(re.escape, marks)), probe_text)
        # Before the first result, only its last non-empty line on (the turn's own text may differ).
        lines = pieces[0].split("\n")
        start = max((k for k, line in enumerate(lines) if line.strip()), default=0)
        lead = "\n".join(lines[start:])
        pattern = re.escape(lead) + "".join(f"(.*?){re.escape(p)}" for p in pieces[1:-1]) \
            + "(.*?)" + re.escape(pieces[-1]) + r"\Z"
        found = re.search(pattern, _flatten(tail), re.DOTALL)
        return list(found.groups()) if found else []


def _flatten(messages: Sequence[Message]) -> str:
    return "\n\x01".join(f"{m.role}\x02{m.content}" for m in messages)


def _last_assistant(messages: Sequence[Message]) -> tuple[int, AssistantMessage] | None:
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, AssistantMessage):
            return i, message
    return None


def _size(messages: Sequence[Message]) -> int:
    return sum(len(getattr(m, "content", "")) for m in messages) // 4


def _as_spec(tool: ToolLike) -> ToolSpec:
    """A `ToolSpec` from a spec, an OpenAI tool definition, or an object with a ``spec``."""
    if isinstance(tool, ToolSpec):
        return tool
    if isinstance(tool, Mapping):
        fn = tool.get("function", tool)
        return ToolSpec(name=str(fn["name"]), description=str(fn.get("description") or ""),
                        parameters=dict(fn.get("parameters") or {"type": "object", "properties": {}}))
    spec = getattr(tool, "spec", None)
    if isinstance(spec, ToolSpec):
        return spec
    raise TypeError(f"not a tool: {tool!r} (give a ToolSpec, an OpenAI tool definition or a Tool)")


_MAX_DEPTH = 12
"""Nesting beyond which `example_arguments` stops (recursive schemas): optional parts are left out."""

_STRING_FORMATS = {
    "date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00", "email": "a@example.com",
    "uri": "https://example.com", "url": "https://example.com", "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1", "ipv6": "::1", "hostname": "example.com",
}


def example_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments that satisfy a tool's JSON schema: every required field, of the right type.

    ``const``, then the first ``enum`` value, then ``default`` are used where given; otherwise a value
    of the declared type within its bounds (``minimum``, ``minLength``, ``minItems``, ...). Nested
    objects and arrays are filled the same way, ``$ref`` to ``$defs``/``definitions`` is followed, and
    ``anyOf``/``oneOf`` take their first non-null option. Optional fields are left out.

    Args:
        schema: A JSON schema of type ``object`` (a tool's ``parameters``).

    Returns:
        The arguments object (``{}`` for a schema that is not an object).
    """
    value = _example(schema, schema, 0)
    return value if isinstance(value, dict) else {}


def _example(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _example(_resolve(ref, root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, Mapping) and o.get("type") != "null"]
        if options:
            return _example(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = [k for k in schema.get("required") or [] if isinstance(k, str)]
        return {k: _example(properties.get(k) or {}, root, depth + 1) for k in required}
    if kind == "array":
        items: Mapping[str, Any] = schema["items"] if isinstance(schema.get("items"), Mapping) else {}
        n = max(int(schema.get("minItems") or 0), 1)
        if schema.get("maxItems") is not None:
            n = min(n, int(schema["maxItems"]))
        return [_example(items, root, depth + 1) for _ in range(n)] if depth < _MAX_DEPTH else []
    if kind == "string":
        text = _STRING_FORMATS.get(str(schema.get("format")), "a")
        low, high = int(schema.get("minLength") or 0), schema.get("maxLength")
        if len(text) < low:
            text = text + "a" * (low - len(text))
        return text[: int(high)] if high is not None else text
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    """Zero, moved into the schema's bounds (past an exclusive bound by 1, or halfway to the other bound)."""

    def bound(key: str) -> float | None:
        v = schema.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    low, high = bound("minimum"), bound("maximum")
    ex_low, ex_high = bound("exclusiveMinimum"), bound("exclusiveMaximum")
    if integer:  # exclusive bounds become inclusive ones on the integers
        if ex_low is not None:
            low = max(low if low is not None else -math.inf, math.floor(ex_low) + 1)
        if ex_high is not None:
            high = min(high if high is not None else math.inf, math.ceil(ex_high) - 1)
        value = 0
        if low is not None:
            value = max(value, math.ceil(low))
        if high is not None:
            value = min(value, math.floor(high))
        return value
    x = 0.0
    if low is not None:
        x = max(x, low)
    if high is not None:
        x = min(x, high)
    top = min((v for v in (high, ex_high) if v is not None), default=None)
    bottom = max((v for v in (low, ex_low) if v is not None), default=None)
    if ex_low is not None and x <= ex_low:
        x = ex_low + 1 if top is None else (ex_low + top) / 2
    if ex_high is not None and x >= ex_high:
        x = ex_high - 1 if bottom is None else (ex_high + bottom) / 2
    return x


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/Name``); anything else resolves to an empty schema."""
    if not ref.startswith("#/"):
        return {}
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


# ------------------------------------------------------------------------------------------ network


class NetworkBlockedError(RuntimeError):
    """A test tried to open a connection to a non-loopback address."""


@contextlib.contextmanager
def block_remote_network() -> Iterator[None]:
    """Refuse every socket connection except to loopback and Unix sockets while active.

    Tests use it so that no test can reach a remote model by accident; local servers a test starts on
    127.0.0.1 keep working.
    """
    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise NetworkBlockedError(f"tests may not connect to {host!r}; only loopback is allowed")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        return original(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return original_ex(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
        socket.socket.connect_ex = original_ex  # type: ignore[method-assign]
