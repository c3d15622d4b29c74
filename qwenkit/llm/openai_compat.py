"""`OpenAICompatible`: a `ChatModel` over any OpenAI-compatible server (vLLM, llama.cpp, OpenAI)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI

from qwenkit.errors import ModelError
from qwenkit.llm.base import ChatRequest, StreamChunk
from qwenkit.llm.formats._json import parse_arguments
from qwenkit.types import (
    AssistantMessage,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
    new_call_id,
)

T = TypeVar("T")


def to_wire(message: Message) -> dict[str, Any]:
    """Write a typed message as an OpenAI chat message.

    Assistant content is always a string, never ``null``: llama.cpp's server rejects ``null``.
    """
    match message:
        case SystemMessage() | UserMessage():
            return {"role": message.role, "content": message.content}
        case AssistantMessage():
            wire: dict[str, Any] = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                wire["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": _json_arguments(c),
                        },
                    }
                    for c in message.tool_calls
                ]
            return wire
        case ToolMessage():
            return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}


def _json_arguments(call: ToolCall) -> str:
    """The model's own argument text if it is strict JSON, else the repaired arguments as JSON.

    vLLM runs ``json.loads`` on past calls' arguments and answers 500 when it fails.
    """
    if call.raw_arguments:
        try:
            json.loads(call.raw_arguments)
            return call.raw_arguments
        except ValueError:
            pass
    return json.dumps(call.arguments, ensure_ascii=False)


def _tool_choice(choice: str | None) -> Any:
    if choice is None or choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _retryable(err: Exception) -> bool:
    """Connection problems, 429 and 5xx are worth another try; any other 4xx is the caller's bug."""
    if isinstance(err, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(err, openai.APIStatusError) and (err.status_code == 429 or err.status_code >= 500)


def _usage(usage: Any) -> Usage:
    """Token counts; some servers send ``null`` for a field or no usage at all."""
    if usage is None:
        return Usage()
    return Usage(prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0)


def _server_says(err: openai.APIStatusError) -> str:
    """The server's own error message, without the SDK's "Error code: N - {...}" wrapping."""
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return err.message


def _tool_call(call_id: str | None, name: str, raw: str) -> ToolCall:
    args, error = parse_arguments(raw)
    return ToolCall(id=call_id or new_call_id(), name=name, arguments=args, raw_arguments=raw,
                    arguments_error=error)


class OpenAICompatible:
    """A chat model served over the OpenAI API: ``vllm serve``, ``llama_cpp.server``, or OpenAI itself.

    Args:
        model: Model name as the server knows it.
        base_url: Server URL including ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``).
        api_key: API key (vLLM accepts anything unless started with ``--api-key``).
        timeout: Seconds per request.
        max_retries: Extra attempts on connection errors, 429 and 5xx.
        backoff: First retry delay in seconds; doubles each time, capped by ``max_backoff``.
        max_backoff: Longest delay between attempts.
        stream_usage: Ask for token usage in streams (``stream_options``); turn off for servers that
            reject the field.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str = "EMPTY",
        *,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        stream_usage: bool = True,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stream_usage = stream_usage
        # The SDK's own retries would also retry 408/409; ours follow the rule above.
        self.client = AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)

    @property
    def name(self) -> str:
        return self.model

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        extra = dict(s.extra_body)
        if request.continue_final:
            # vLLM continues the trailing assistant message instead of opening a new turn.
            extra.update(continue_final_message=True, add_generation_prompt=False)
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [to_wire(m) for m in request.messages],
            "temperature": s.temperature,
        }
        optional = {"top_p": s.top_p, "seed": s.seed, "max_tokens": s.max_tokens, "stop": request.stop or None,
                    "tools": request.tools, "tool_choice": _tool_choice(request.tool_choice)}
        params.update({k: v for k, v in optional.items() if v is not None})
        if extra:
            params["extra_body"] = extra
        return params

    def _error(self, err: Exception) -> ModelError:
        if isinstance(err, openai.APITimeoutError):
            return ModelError(f"the model server at {self.base_url} did not answer in time (timeout)")
        if isinstance(err, openai.APIConnectionError):
            return ModelError(f"cannot reach the model server at {self.base_url} ({type(err).__name__})")
        if isinstance(err, openai.NotFoundError):
            return ModelError(f"the server at {self.base_url} has no model {self.model!r}: {_server_says(err)}")
        if isinstance(err, openai.APIStatusError):
            return ModelError(f"the model server answered HTTP {err.status_code}: {_server_says(err)}")
        return ModelError(f"{type(err).__name__}: {err}")

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]]) -> T:
        for n in range(self.max_retries + 1):
            try:
                return await attempt()
            except openai.OpenAIError as err:
                if not _retryable(err) or n == self.max_retries:
                    raise self._error(err) from err
                delay = min(self.max_backoff, self.backoff * 2**n)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))  # jitter spreads a thundering herd
        raise AssertionError("unreachable")

    async def complete(self, request: ChatRequest) -> Completion:
        """Return the whole reply. Raises `ModelError` once retries are spent or on a non-retryable error."""
        params = self._params(request)
        resp = await self._with_retries(lambda: self.client.chat.completions.create(**params))
        if not resp.choices:
            raise ModelError(f"the model server at {self.base_url} returned no choices")
        choice = resp.choices[0]
        calls = tuple(
            _tool_call(c.id, c.function.name, c.function.arguments or "")
            for c in (choice.message.tool_calls or [])
            if c.type == "function"
        )
        stop = (choice.model_extra or {}).get("stop_reason")
        usage = _usage(resp.usage)
        return Completion(
            text=choice.message.content or "", tool_calls=calls, finish_reason=choice.finish_reason,
            stop_word=stop if isinstance(stop, str) else None, usage=usage,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas; the last chunk carries the assembled `Completion`.

        Retries apply until the response headers arrive; a stream cut later raises `ModelError`.
        """
        params: dict[str, Any] = {**self._params(request), "stream": True}
        if self.stream_usage:
            params["stream_options"] = {"include_usage": True}
        stream = await self._with_retries(lambda: self.client.chat.completions.create(**params))
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        stop: Any = None
        usage = Usage()
        try:
            async for chunk in stream:
                if chunk.usage:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices[:1]:
                    finish = choice.finish_reason or finish
                    stop = (choice.model_extra or {}).get("stop_reason") or stop
                    for tc in choice.delta.tool_calls or []:
                        acc = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        acc["id"] = tc.id or acc["id"]
                        if tc.function is not None:
                            acc["name"] += tc.function.name or ""
                            acc["arguments"] += tc.function.arguments or ""
                    if choice.delta.content:
                        text.append(choice.delta.content)
                        yield StreamChunk(delta=choice.delta.content)
        except Exception as err:  # any failure while reading the stream is the transport's (httpx2's)
            raise self._error(err) from err
        tool_calls = tuple(_tool_call(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items()))
        yield StreamChunk(completion=Completion(
            text="".join(text), tool_calls=tool_calls, finish_reason=finish,
            stop_word=stop if isinstance(stop, str) else None, usage=usage,
        ))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()
