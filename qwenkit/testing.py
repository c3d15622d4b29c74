"""Deterministic public test models (`ScriptedModel`, `FunctionModel`) and a guard against real network calls.

Use them to test agents and tools without a server::

    model = ScriptedModel(['✿FUNCTION✿: add\\n✿ARGS✿: {"a": 1, "b": 2}', "✿RETURN✿: 3"])
    result = Agent(model, tools=[add], format="qwen").run("1+2?")
    assert model.requests[1].messages[-1].content.endswith("✿RESULT✿: 3\\n✿RETURN✿")
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest, StreamChunk
from qwenkit.types import Completion, Usage


def apply_stop(text: str, stop: Iterable[str]) -> tuple[str, str | None]:
    """Cut ``text`` before the earliest stop word, as a server does; return the text and the word."""
    cut, word = len(text), None
    for s in stop:
        i = text.find(s)
        if s and i != -1 and i < cut:
            cut, word = i, s
    return text[:cut], word


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

    Args:
        replies: Reply texts (or whole `Completion` objects, e.g. with native tool calls).
        name: Model name reported.
        apply_stops: Cut each text reply at the request's stop words, as a real server would.
        chunk_size: Characters per streamed delta.

    Attributes:
        requests: Every `ChatRequest` received, in order.
    """

    def __init__(
        self, replies: Iterable[str | Completion], *, name: str = "scripted", apply_stops: bool = True,
        chunk_size: int = 4,
    ) -> None:
        self._replies = list(replies)
        self._next = 0
        self._name = name
        self.apply_stops = apply_stops
        self.chunk_size = chunk_size
        self.requests: list[ChatRequest] = []

    @property
    def name(self) -> str:
        return self._name

    def _take(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if self._next >= len(self._replies):
            raise ModelError(f"ScriptedModel ran out of replies after {len(self._replies)}")
        reply = self._replies[self._next]
        self._next += 1
        return _as_completion(reply, request, self.apply_stops)

    async def complete(self, request: ChatRequest) -> Completion:
        return self._take(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        return _chunks(self._take(request), self.chunk_size)


ReplyFunction = Callable[[ChatRequest], "str | Completion | Awaitable[str | Completion]"]


class FunctionModel:
    """Calls a function (sync or async) to write each reply; the function sees the whole request.

    Args:
        fn: Takes the `ChatRequest`, returns reply text or a `Completion`.
        name: Model name reported.
        apply_stops: Cut text replies at the request's stop words.
    """

    def __init__(self, fn: ReplyFunction, *, name: str = "function", apply_stops: bool = True) -> None:
        self.fn = fn
        self._name = name
        self.apply_stops = apply_stops
        self.requests: list[ChatRequest] = []

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        reply: Any = self.fn(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return _as_completion(reply, request, self.apply_stops)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        async for chunk in _chunks(await self.complete(request), 4):
            yield chunk


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
