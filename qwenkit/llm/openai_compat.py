"""`OpenAICompatible`: a `ChatModel` over any OpenAI-compatible server (vLLM, llama.cpp, OpenAI).

Everything the server sends is untrusted: each call has a total deadline, each reply a byte cap, and a
reply that cannot be read is a `ModelError`, never a traceback (see `qwenkit.llm._openai.reply`).

`complete` posts its JSON on qwenkit's own pooled HTTP/1.1 connections (`qwenkit.llm._openai.post`, replies
parsed by llhttp): the ``openai`` SDK's own work per request (about 2 ms of CPU), and aiohttp's (about
0.2 ms), would cap a benchmark's throughput below what a fast server allows.
Streams, ``/v1/models`` and the template probes go through the SDK's httpx2 client.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI

from qwenkit._untrusted import clean_text
from qwenkit.errors import ConfigError, ModelError
from qwenkit.llm._openai import post, probe
from qwenkit.llm._openai.replicas import Replica, Replicas
from qwenkit.llm._openai.reply import StreamAssembler, parse_body
from qwenkit.llm._openai.sse import sse_data
from qwenkit.llm._openai.transport import CappedTransport, check_api_key, check_base_url, retry_after
from qwenkit.llm._openai.wire import request_params, to_wire
from qwenkit.llm.base import ChatRequest, StreamChunk
from qwenkit.llm.template_info import TemplateInfo
from qwenkit.types import Completion

__all__ = ["OpenAICompatible", "to_wire"]

T = TypeVar("T")


class _BrokenReply(openai.APIConnectionError):
    """The connection broke after the reply had started (retried like any connection error)."""


_Failure = openai.OpenAIError | post.PostError
"""A failed attempt, from the SDK path or the fast one (`complete`): both mean the same things."""


def _retryable(err: _Failure) -> bool:
    """Connection problems, 429 and 5xx are worth another try; any other 4xx is the caller's bug.

    A read timeout is not retried: the server accepted the request and then said nothing for the
    whole idle timeout, and asking again would only double the wait. A connect timeout is retried.
    """
    if isinstance(err, post.PostError):
        return err.retryable
    if isinstance(err, openai.APITimeoutError):
        return isinstance(err.__cause__, httpx2.ConnectTimeout | httpx2.PoolTimeout)
    if isinstance(err, openai.APIConnectionError):
        return True
    return isinstance(err, openai.APIStatusError) and (err.status_code == 429 or err.status_code >= 500)


def _stalled(err: _Failure) -> bool:
    """The server went silent (a read timeout): not retried, but its replica rests."""
    return isinstance(err, openai.APITimeoutError | post.Stalled)


def _asked(err: _Failure) -> float | None:
    """The wait a server asked for with an error status (``Retry-After``), if it did."""
    if isinstance(err, openai.APIStatusError):
        return retry_after(err.response.headers)
    if isinstance(err, post.StatusError):
        return retry_after(err.headers)
    return None


def _server_says(err: openai.APIStatusError) -> str:
    """The server's own error message, without the SDK's "Error code: N - {...}" wrapping."""
    said = err.message
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            said = inner["message"]
    return clean_text(said[:2000])[0]  # shown to the operator: bounded and printable as UTF-8


_DRAIN_BYTES = 65_536
_DRAIN_SECONDS = 0.5


async def _drain(body: AsyncIterator[bytes], deadline: float) -> None:
    """Read what follows ``[DONE]`` (normally only the end of the body), so the connection goes back to the
    pool instead of being closed; a server that sends more than `_DRAIN_BYTES` or keeps the body open longer
    than `_DRAIN_SECONDS` just costs that connection."""
    loop = asyncio.get_running_loop()
    seen = 0
    with contextlib.suppress(Exception):
        async with asyncio.timeout_at(min(deadline, loop.time() + _DRAIN_SECONDS)):
            async for part in body:
                seen += len(part)
                if seen > _DRAIN_BYTES:
                    return


class OpenAICompatible:
    """A chat model served over the OpenAI API: ``vllm serve``, ``llama_cpp.server``, or OpenAI itself.

    Time limits (defaults: a dead server fails in seconds, a stalled one within ``idle_timeout`` = 30 s,
    any call within ``timeout`` = 120 s):

    * ``timeout`` is a **deadline** for the whole call: connecting, waiting, reading the whole body or
      stream, every retry and every wait between retries. A server trickling one byte a second is cut
      off at the deadline.
    * ``idle_timeout`` is the longest silence once a reply has started (between chunks of a body or a
      stream) and, for `stream`, before the reply starts. A server silent that long is stalled and is
      not retried. A non-streamed reply is generated whole before the server sends its first byte, so
      `complete` waits for it up to the deadline.
    * ``connect_timeout`` bounds opening the connection (retried).

    Retries (connection errors, 429, 5xx) back off exponentially with jitter; a ``Retry-After`` header
    (seconds or an HTTP date) sets the wait instead, at most ``max_retry_after``. A wait that would end
    past the deadline is not started: the call fails at once, saying so.

    Replicas: given several URLs, each request goes to the replica with the fewest requests in flight. A
    replica that fails (no connection, 429, 5xx) rests for ``replica_backoff`` seconds (doubling while it
    keeps failing, at most 60 s) and the request goes on at once to another one, within the same deadline;
    only when every replica has failed does the call wait and retry as above (``max_retries`` rounds), and
    then it fails with one `ModelError` naming them all. Before the first request the replicas are asked
    which models they serve (``/v1/models``, see `check`).

    Args:
        model: Model name as the server knows it.
        base_url: Server URL including ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``), or a list of the URLs
            of several servers (replicas) of the same model.
        api_key: API key (vLLM accepts anything unless started with ``--api-key``); printable ASCII.
        timeout: Deadline in seconds for one call, retries included (default 120).
        idle_timeout: Longest silence in seconds from a server that has started to answer (default 30).
        connect_timeout: Seconds to open a connection (default 10).
        max_retries: Extra attempts on connection errors, 429 and 5xx.
        backoff: First retry delay in seconds; doubles each time, capped by ``max_backoff``.
        max_backoff: Longest delay between attempts without a ``Retry-After``.
        max_retry_after: Longest wait a ``Retry-After`` header is honoured for (default 30 s).
        max_reply_bytes: Most bytes read from one reply, body or stream (default 16 MiB).
        stream_usage: Ask for token usage in streams (``stream_options``); turn off for servers that
            reject the field.
        replica_backoff: Seconds a failing replica rests before it is used again (doubles per failure in a
            row); only with several URLs.
        check_models: Ask ``/v1/models`` before the first request (`check`). Default: with several URLs.
        probe_timeout: Time limit in seconds for `template_info` and `count_tokens` (default 10).

    Raises:
        ConfigError: ``base_url`` is not an ``http(s)`` URL (bad port, bad IPv6 literal, ...) or a URL is
            given twice, the API key holds a character an HTTP header cannot carry, or a limit is not
            positive.
    """

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str] = "http://127.0.0.1:8000/v1",
        api_key: str = "EMPTY",
        *,
        timeout: float = 120.0,
        idle_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        max_reply_bytes: int = 16 * 1024 * 1024,
        stream_usage: bool = True,
        replica_backoff: float = 5.0,
        check_models: bool | None = None,
        probe_timeout: float = 10.0,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ConfigError("no model server URL was given")
        for url in urls:
            if not isinstance(url, str):
                raise ConfigError(f"a model server URL must be a string, not {type(url).__name__}")
            check_base_url(url)
        twice = sorted({u for u in urls if urls.count(u) > 1})
        if twice:
            raise ConfigError(f"the model server URL {twice[0]!r} is given more than once")
        check_api_key(api_key)
        limits = {"timeout": timeout, "idle_timeout": idle_timeout, "connect_timeout": connect_timeout,
                  "max_reply_bytes": max_reply_bytes, "replica_backoff": replica_backoff,
                  "probe_timeout": probe_timeout}
        for name, value in limits.items():
            if not value > 0 or value == float("inf"):  # also refuses NaN
                raise ConfigError(f"{name} must be a positive finite number, not {value!r}")
        if max_retries < 0 or backoff < 0 or max_backoff < 0 or not max_retry_after >= 0:
            raise ConfigError("max_retries, backoff, max_backoff and max_retry_after must not be negative")
        self.model = model
        self.base_url = urls[0]
        """The first server's URL (the only one unless replicas were given)."""
        self.base_urls = tuple(urls)
        self.timeout = timeout
        self.idle_timeout = min(idle_timeout, timeout)
        self.connect_timeout = min(connect_timeout, timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.max_reply_bytes = max_reply_bytes
        self.stream_usage = stream_usage
        self.replica_backoff = replica_backoff
        self.probe_timeout = min(probe_timeout, timeout)
        self._closed = False
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._replicas = Replicas([self._replica(url, api_key) for url in urls])
        self._http = self._replicas.all[0].http
        self.client = self._replicas.all[0].client
        self._must_check = len(urls) > 1 if check_models is None else check_models
        self._check_error: ConfigError | None = None
        self._max_model_len: int | None = None
        self._template: TemplateInfo | None = None
        self._template_done = False
        self._no_tokenize = False
        self._locks: dict[str, asyncio.Lock] = {}

    def _replica(self, url: str, api_key: str) -> Replica:
        # Our own transport caps every reply, error bodies included (the SDK reads those whole).
        http = httpx2.AsyncClient(transport=CappedTransport(self.max_reply_bytes, url), follow_redirects=True)
        # The SDK's own retries would also retry 408/409 and ignore the deadline; ours follow the rules above.
        client = AsyncOpenAI(base_url=url, api_key=api_key, max_retries=0, http_client=http)
        fast = post.JsonPost(url.rstrip("/") + "/chat/completions", self._auth, max_bytes=self.max_reply_bytes,
                             connect_timeout=self.connect_timeout, idle_timeout=self.idle_timeout, where=url)
        return Replica(url, http, client, fast if fast.usable else None)

    @property
    def replicas(self) -> tuple[Replica, ...]:
        """The servers requests go to, with their load and health (one unless several URLs were given)."""
        return self._replicas.all

    def _lock(self, name: str) -> asyncio.Lock:
        # Created on first use, inside the running loop (an asyncio.Lock binds to the loop it waits in).
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    @property
    def name(self) -> str:
        return self.model

    async def __aenter__(self) -> OpenAICompatible:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pools. Idempotent; the model cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        for replica in self._replicas.all:
            if replica.post is not None:
                await replica.post.aclose()
            await replica.client.close()
            await replica.http.aclose()

    # ------------------------------------------------------------------------------------- errors

    def _late(self, url: str) -> ModelError:
        return ModelError(f"the model server at {url} did not answer in time: no complete reply "
                          f"within the {self.timeout:g} s deadline (timeout)")

    def _stalled(self, url: str) -> ModelError:
        return ModelError(f"the model server at {url} did not answer in time: it sent nothing for "
                          f"{self.idle_timeout:g} s (idle timeout)")

    def _error(self, err: _Failure, url: str) -> ModelError:
        if isinstance(err, post.PostError):
            return self._post_error(err, url)
        if isinstance(err, openai.APITimeoutError):
            if isinstance(err.__cause__, httpx2.ConnectTimeout | httpx2.PoolTimeout):
                return ModelError(f"cannot reach the model server at {url} (no connection within "
                                  f"{self.connect_timeout:g} s)")
            return self._stalled(url)
        if isinstance(err, _BrokenReply):
            return ModelError(f"the connection to the model server at {url} broke mid-reply "
                              f"({err.message[:300]})")
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__
            why = f"{type(cause).__name__}: {cause}" if cause is not None else type(err).__name__
            return ModelError(f"cannot reach the model server at {url} ({why[:300]})")
        if isinstance(err, openai.NotFoundError):
            return ModelError(f"the server at {url} has no model {self.model!r}: {_server_says(err)}")
        if isinstance(err, openai.APIStatusError):
            where = f" at {url}" if len(self._replicas) > 1 else ""
            return ModelError(f"the model server{where} answered HTTP {err.status_code}: {_server_says(err)}")
        return ModelError(f"{type(err).__name__}: {err}")

    def _post_error(self, err: post.PostError, url: str) -> ModelError:
        """The same messages as `_error` gives the SDK's errors of the same kind."""
        if isinstance(err, post.Stalled):
            return self._stalled(url)
        if isinstance(err, post.ConnectionFailed):
            if err.timed_out:
                return ModelError(f"cannot reach the model server at {url} (no connection within "
                                  f"{self.connect_timeout:g} s)")
            return ModelError(f"cannot reach the model server at {url} ({clean_text(err.why[:300])[0]})")
        if isinstance(err, post.BrokenReply):  # the HTTP client's words may quote what the server sent
            return ModelError(f"the connection to the model server at {url} broke mid-reply "
                              f"({clean_text(err.why[:300])[0]})")
        assert isinstance(err, post.StatusError)
        said = clean_text(err.said[:2000])[0]  # shown to the operator: bounded and printable as UTF-8
        if err.status == 404:
            return ModelError(f"the server at {url} has no model {self.model!r}: {said}")
        where = f" at {url}" if len(self._replicas) > 1 else ""
        return ModelError(f"the model server{where} answered HTTP {err.status}: {said}")

    def _all_failed(self, failed: dict[Replica, str]) -> ModelError:
        said = "; ".join(why for why in failed.values())
        return ModelError(f"none of the {len(self._replicas)} model servers answered: {said[:3000]}")

    # ------------------------------------------------------------------------------------ attempts

    def _delay(self, err: _Failure, n: int) -> tuple[float, float | None]:
        """The wait before attempt ``n + 1``, and the server's ``Retry-After`` if it sent one."""
        asked = _asked(err)
        if asked is not None:
            return min(asked, self.max_retry_after), asked
        delay = min(self.max_backoff, self.backoff * 2**n)
        return delay * (0.5 + random.random() / 2), None  # jitter spreads a thundering herd

    async def _with_retries(self, attempt: Callable[[Replica, float], Awaitable[T]]) -> T:
        """Run ``attempt(replica, deadline)`` until it succeeds, retries are spent, or the deadline passes.

        An attempt bounds itself by ``deadline`` (raising `TimeoutError`): the fast path does so inside
        `JsonPost.send`, and one timer per request is less work in the runner's hot path than two.

        With several replicas a failed attempt moves on at once to a replica that has not failed in this
        call; the wait-and-retry rounds start when every replica has failed.
        """
        if self._closed:
            raise ModelError(f"the model client for {self.base_url} was closed (aclose) and cannot be used")
        if self._must_check:
            await self._check_once()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        many = len(self._replicas) > 1
        failed: dict[Replica, str] = {}
        n = 0
        while True:
            replica = self._replicas.pick(loop.time(), failed)
            assert replica is not None  # `failed` is emptied before it can hold every replica
            replica.in_flight += 1
            replica.sent += 1
            try:
                result = await attempt(replica, deadline)
                replica.succeeded()
                return result
            except TimeoutError:
                raise self._late(replica.url) from None
            except (openai.OpenAIError, post.PostError) as err:
                error = self._error(err, replica.url)
                if many and (_retryable(err) or _stalled(err)):
                    # Other requests keep off it for a while; a stalled one too, though this call ends.
                    replica.failed(loop.time(), str(error), self.replica_backoff, _asked(err))
                if not _retryable(err):
                    raise error from err
                failed[replica] = str(error)
                if len(failed) < len(self._replicas):
                    continue  # another replica may answer at once
                if n >= self.max_retries:
                    raise (self._all_failed(failed) if many else error) from err
                delay, asked = self._delay(err, n)
                if loop.time() + delay >= deadline:
                    said = f"; it asked to retry after {asked:g} s" if asked is not None else ""
                    shown = self._all_failed(failed) if many else error
                    raise ModelError(f"{shown}{said}, which is past the {self.timeout:g} s "
                                     "deadline of this call") from err
                await asyncio.sleep(delay)
                failed.clear()
                n += 1
            finally:
                replica.in_flight -= 1

    def _timeout(self, deadline: float, *, wait_whole: bool) -> httpx2.Timeout:
        """httpx2 limits for one attempt; the first read waits for the whole reply when not streamed."""
        left = max(0.001, deadline - asyncio.get_running_loop().time())
        # Not streamed: the server is silent until the reply is whole; the deadline (asyncio) ends the
        # wait, httpx2's read limit a moment later is only a backstop, so the error names the deadline.
        read = left + 1.0 if wait_whole else min(self.idle_timeout, left)
        # Waiting for a free connection of our own pool is not the server's silence: only the deadline bounds it.
        return httpx2.Timeout(connect=min(self.connect_timeout, left), read=read,
                              write=min(self.idle_timeout, left), pool=left)

    async def _chunks(self, response: openai.AsyncAPIResponse[Any], deadline: float,
                      url: str) -> AsyncIterator[bytes]:
        """The body's bytes; a silence of ``idle_timeout`` or the deadline ends it with `ModelError`."""
        loop = asyncio.get_running_loop()
        parts = response.iter_bytes().__aiter__()
        while True:
            late = loop.time() + self.idle_timeout >= deadline
            try:
                async with asyncio.timeout_at(min(deadline, loop.time() + self.idle_timeout)):
                    part = await parts.__anext__()
            except StopAsyncIteration:
                return
            except (TimeoutError, httpx2.TimeoutException):
                raise (self._late(url) if late or loop.time() >= deadline else self._stalled(url)) from None
            except httpx2.TransportError as err:  # the connection broke mid-reply
                request = response.http_response.request
                raise _BrokenReply(message=f"{type(err).__name__}: {err}", request=request) from err
            yield part

    # ---------------------------------------------------------------------------------- the API

    async def complete(self, request: ChatRequest) -> Completion:
        """Return the whole reply.

        Raises:
            ModelError: Retries are spent, a non-retryable error, the deadline passed, or the reply is
                not a readable chat completion (not JSON, HTML, not UTF-8, no choices, too large).
        """
        params = request_params(self.model, request)
        body: bytes | None = None  # encoded once for every attempt, and only if one goes the fast way

        async def attempt(replica: Replica, deadline: float) -> Completion:
            nonlocal body
            if replica.post is not None:
                if body is None:
                    extra = params.get("extra_body") or {}
                    # As the SDK sends it: extra_body's fields at the top level, overriding the others.
                    body = post.encode_body({**{k: v for k, v in params.items() if k != "extra_body"}, **extra})
                try:
                    data, content_type = await replica.post.send(body, deadline)
                    return parse_body(data, content_type, replica.url)
                except post.Redirected:
                    pass  # the SDK's client follows redirects (its rules, its limits): this attempt goes that way
            create = replica.client.chat.completions.with_streaming_response.create
            async with asyncio.timeout_at(deadline), create(
                **params, timeout=self._timeout(deadline, wait_whole=True)
            ) as response:
                body = b"".join([part async for part in self._chunks(response, deadline, replica.url)])
                return parse_body(body, response.headers.get("content-type", ""), replica.url)

        return await self._with_retries(attempt)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas; the last chunk carries the assembled `Completion`.

        Retries apply until the response headers arrive; a stream cut or stalled later, or a chunk that
        cannot be read, raises `ModelError`. The deadline covers the whole stream.
        """
        params: dict[str, Any] = {**request_params(self.model, request), "stream": True}
        if self.stream_usage:
            params["stream_options"] = {"include_usage": True}
        async with AsyncExitStack() as stack:

            async def attempt(replica: Replica,
                              deadline: float) -> tuple[openai.AsyncAPIResponse[Any], float, Replica]:
                create = replica.client.chat.completions.with_streaming_response.create
                opened = create(**params, timeout=self._timeout(deadline, wait_whole=False))
                async with asyncio.timeout_at(deadline):  # until the headers; the chunks keep the deadline
                    return await stack.enter_async_context(opened), deadline, replica

            response, deadline, replica = await self._with_retries(attempt)
            assembler = StreamAssembler(replica.url)
            replica.in_flight += 1  # the stream is in flight until it ends
            try:
                body = self._chunks(response, deadline, replica.url)
                async for payload in sse_data(body):
                    if payload.strip() == b"[DONE]":
                        await _drain(body, deadline)
                        break
                    delta = assembler.feed(payload)
                    if delta or assembler.reasoning:
                        yield StreamChunk(delta=delta, reasoning=assembler.reasoning)
            except _BrokenReply as err:  # too late to retry: deltas were already shown
                raise self._error(err, replica.url) from err
            finally:
                replica.in_flight -= 1
            yield StreamChunk(completion=assembler.completion())


    # ------------------------------------------------------------------ models and the chat template

    async def _check_once(self) -> None:
        if self._check_error is not None:
            raise self._check_error
        async with self._lock("check"):
            if self._must_check:  # another request may have checked while this one waited
                await self.check()

    async def check(self) -> None:
        """Ask every server which models it serves (``GET /v1/models``) and check ``model`` is among them.

        A server without a model list (404, not JSON) passes: nothing can be told. A server that does not
        answer rests (see replicas) and is checked no further; the first request is not delayed by it.
        Runs before the first request when several URLs were given (or ``check_models=True``).

        Raises:
            ConfigError: A server lists models and ``model`` is not one of them (a wrong name, or replicas
                serving different models: the message names the replica that differs).
            ModelError: No server answered.
        """
        loop = asyncio.get_running_loop()
        timeout = min(self.probe_timeout, self.connect_timeout + self.idle_timeout)

        async def ask(replica: Replica) -> dict[str, int | None] | probe.Unreachable | None:
            try:
                return await probe.models(replica.http, replica.url, self._auth, timeout)
            except probe.Unreachable as err:
                return err

        answers = dict(zip(self._replicas.all, await asyncio.gather(*(ask(r) for r in self._replicas.all)),
                           strict=True))
        down = {r: f"cannot reach the model server at {r.url} ({a})" for r, a in answers.items()
                if isinstance(a, probe.Unreachable)}
        if len(down) == len(self._replicas):
            raise (self._all_failed(down) if len(down) > 1 else ModelError(next(iter(down.values()))))
        for replica, why in down.items():
            replica.failed(loop.time(), why, self.replica_backoff)
        listed = {r: a for r, a in answers.items() if isinstance(a, dict)}
        serving = [r for r, names in listed.items() if self.model in names]
        for replica, names in listed.items():
            if self.model in names:
                continue
            shown = ", ".join(repr(n) for n in list(names)[:10]) or "none"
            if serving:
                error = ConfigError(f"the model server at {replica.url} serves {shown}, not {self.model!r} as "
                                    f"{self._replicas.names(serving)} does; all replicas must serve one model")
            else:
                error = ConfigError(f"the model server at {replica.url} has no model {self.model!r}; it serves "
                                    f"{shown}")
            self._check_error = error
            raise error
        for replica in serving:
            length = listed[replica][self.model]
            if length is not None:
                self._max_model_len = length
                break
        self._must_check = False

    async def template_info(self) -> TemplateInfo | None:
        """What the server shows of its chat template: vLLM renders the probe conversation on request.

        Asks ``/v1/models`` for the context length (vLLM's ``max_model_len``), renders `PROBE_MESSAGES`
        with `PROBE_TOOL` through vLLM's ``/tokenize`` and ``/detokenize`` (at the server root), and tells
        thinking support by rendering a generation prompt with ``enable_thinking`` on and off. Asked once
        per instance; later calls return the cached answer. A server without these endpoints (llama.cpp's,
        OpenAI) gives ``None``, or only ``max_input_tokens``; never an error, within ``probe_timeout``.
        """
        if self._template_done:
            return self._template
        async with self._lock("template"):
            if not self._template_done:
                self._template = await self._probe_template()
                self._template_done = True
        return self._template

    async def _probe_template(self) -> TemplateInfo | None:
        replica = self._replicas.pick(asyncio.get_running_loop().time())
        assert replica is not None
        root = probe.server_root(replica.url)
        found: dict[str, Any] = {}

        async def tokens(body: dict[str, Any]) -> list[int] | None:
            done = await probe.tokenize(replica.http, root, self._auth, self.probe_timeout, body)
            return None if done is None else done[0]

        try:
            async with asyncio.timeout(self.probe_timeout):
                served = await probe.models(replica.http, replica.url, self._auth, self.probe_timeout)
                if served is not None and served.get(self.model) is not None:
                    found["max_input_tokens"] = served[self.model]
                rendered = await tokens(probe.probe_body(self.model))
                if rendered is None:
                    self._no_tokenize = True
                else:
                    text = await probe.detokenize(replica.http, root, self._auth, self.probe_timeout, self.model,
                                                  rendered)
                    if text is not None:
                        found["probe_render"] = text
                    on = await tokens(probe.thinking_body(self.model, True))
                    off = await tokens(probe.thinking_body(self.model, False))
                    if on is not None and off is not None:
                        found["thinking"] = on != off
        except (TimeoutError, probe.Unreachable):
            pass  # what was found so far stands
        if not found:
            return None
        if "max_input_tokens" not in found and self._max_model_len is not None:
            found["max_input_tokens"] = self._max_model_len
        source = f"vLLM /tokenize at {root}" if "probe_render" in found else f"/v1/models at {replica.url}"
        return TemplateInfo(source=source, **found)

    async def count_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int | None:
        """Prompt tokens of ``messages`` (OpenAI-style dicts) and ``tools`` with the generation prompt, counted
        by the server's own tokenizer and template (vLLM's ``/tokenize``); ``None`` where it cannot count.

        A server that lacked ``/tokenize`` once is not asked again.
        """
        if self._no_tokenize or self._closed:
            return None
        replica = self._replicas.pick(asyncio.get_running_loop().time())
        assert replica is not None
        body: dict[str, Any] = {"model": self.model, "messages": messages, "add_generation_prompt": True}
        if tools:
            body["tools"] = tools
        try:
            async with asyncio.timeout(self.probe_timeout):
                done = await probe.tokenize(replica.http, probe.server_root(replica.url), self._auth,
                                            self.probe_timeout, body)
        except (TimeoutError, probe.Unreachable):
            return None
        if done is None:
            self._no_tokenize = True
            return None
        return done[1]
