"""`MCPServer`: one MCP server (a local command over stdio, or a URL) as a source of qwenkit tools.

All protocol work is the official ``mcp`` SDK's (`mcp.Client`). What this module adds is the lifecycle an agent
needs from an untrusted, possibly crashing process:

- The SDK's client lives in an anyio task group, which must be entered and left by the same task. An agent
  may start a server in one task and close it in another, so each server's connection is owned by a
  background task of its own; `start` waits for it to be ready and `aclose` tells it to stop.
- Every wait has a deadline: the start (spawn and handshake), each tool listing, each call, the stop.
- A call past its timeout is abandoned with the SDK's request timeout, which also sends the server the MCP
  cancellation notification (``notifications/cancelled``), so the server stops the work too.
- A server that dies mid-run: the call in flight gives an error observation, and any later use raises
  `MCPServerError` naming the server and what happened (its last stderr lines for a local command).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from qwenkit._untrusted import clean_text
from qwenkit.errors import ConfigError, MCPServerError
from qwenkit.mcp._stderr import StderrTail
from qwenkit.mcp.results import to_output
from qwenkit.mcp.tool import MCPTool, build_tools
from qwenkit.sandbox.images import OutputsBudget
from qwenkit.tools.base import Tool, ToolOutput

log = logging.getLogger("qwenkit.mcp")

HttpKind = Literal["streamable-http", "sse"]
HttpChoice = Literal["auto", "streamable-http", "sse"]

MAX_LIST_PAGES = 100
"""Most ``tools/list`` pages read from one server (a paginator that never ends cannot hang a start)."""
STOP_TIMEOUT_S = 15.0
"""How long `MCPServer.aclose` waits for the connection to wind down (the SDK kills a stdio server within ~7 s)."""
_CALL_GRACE_S = 5.0
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    OSError, anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, httpx2.TransportError,
)
"""Extra time after a call's own timeout before the whole call is cancelled (the SDK's timeout fires first)."""


@dataclass(frozen=True)
class StdioTransport:
    """How to start a local MCP server: a command whose stdin/stdout speak MCP."""

    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None

    def describe(self) -> str:
        return shlex.join([self.command, *self.args])


@dataclass(frozen=True)
class HttpEndpoint:
    """How to reach a remote MCP server: a URL (streamable HTTP, or SSE for older servers)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    kind: HttpChoice = "auto"

    def describe(self) -> str:
        return self.url


def _leaf(exc: BaseException) -> BaseException:
    """The first meaningful exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)] or list(exc.exceptions)
        exc = inner[0]
    return exc


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark an abandoned future's exception as seen (asyncio otherwise logs "exception was never retrieved")."""
    if future.done() and not future.cancelled():
        future.exception()


def _describe(exc: BaseException) -> str:
    exc = _leaf(exc)
    if isinstance(exc, MCPServerError):
        return str(exc)
    if isinstance(exc, MCPError):
        if exc.code == types.CONNECTION_CLOSED:
            return "it closed the connection"
        return f"it answered with MCP error {exc.code}: {clean_text(exc.message[:300])[0]}"
    if isinstance(exc, FileNotFoundError):
        return f"the command was not found ({exc.filename or exc})"
    if isinstance(exc, PermissionError):
        return f"the command cannot be run ({exc})"
    if isinstance(exc, ValidationError):
        return "it sent a message that is not valid MCP"
    text = clean_text(str(exc)[:300])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class MCPServer:
    """One MCP server as a source of qwenkit tools.

    Make one with `MCPServer.stdio` or `MCPServer.http`; start it with ``async with server:`` (or `start`), then
    `tools` returns its tools as qwenkit `Tool` objects for an `Agent`::

        async with MCPServer.stdio("uvx", ["mcp-server-time"]) as server:
            agent = Agent(model, tools=await server.tools())

    Args:
        transport: How to reach the server.
        name: Name used in messages (default: the command line or URL).
        prefix: Prepended to every tool name as ``{prefix}_{name}`` to keep names unique across servers.
        timeout: Default seconds a tool call may take before it is cancelled (the agent's per-call timeout,
            when set, wins).
        start_timeout: Seconds allowed to start the server and complete the MCP handshake, and for each
            tool listing.
        outputs_dir: Folder where images returned by tools are saved (default: a temporary folder removed
            by `aclose`).
        outputs_max_bytes: Byte budget of the outputs folder; the oldest images are deleted to stay under it.
    """

    def __init__(
        self,
        transport: StdioTransport | HttpEndpoint,
        *,
        name: str | None = None,
        prefix: str | None = None,
        timeout: float = 60.0,
        start_timeout: float = 30.0,
        outputs_dir: str | Path | None = None,
        outputs_max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if timeout <= 0 or start_timeout <= 0:
            raise ConfigError("MCP server timeouts must be positive numbers of seconds")
        self.transport = transport
        self.name = name or transport.describe()[:80]
        self.prefix = prefix or None
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._outputs_dir = Path(outputs_dir) if outputs_dir is not None else None
        self._outputs_max_bytes = outputs_max_bytes
        self._temp_dir: Path | None = None
        self._budget: OutputsBudget | None = None
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stderr: StderrTail | None = None
        self._dead: str | None = None
        self._tools: list[MCPTool] | None = None
        self._lock: asyncio.Lock | None = None
        self._ready: asyncio.Future[Client] | None = None

    @classmethod
    def stdio(
        cls, command: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None, *, cwd: str | None = None,
        **options: Any,
    ) -> MCPServer:
        """A local server: ``command args...`` started as a child process, speaking MCP on stdin/stdout.

        Args:
            command: The program to run (looked up on ``PATH``).
            args: Its arguments.
            env: Extra environment variables, added to a minimal safe environment (``HOME``, ``PATH``, ...).
            cwd: Working directory of the process.
            **options: `MCPServer` options (``name``, ``prefix``, ``timeout``, ...).
        """
        if not command.strip():
            raise ConfigError("an MCP server command cannot be empty")
        return cls(StdioTransport(command, tuple(args), dict(env) if env else None, cwd), **options)

    @classmethod
    def http(
        cls, url: str, headers: Mapping[str, str] | None = None, *, transport: HttpChoice = "auto",
        **options: Any,
    ) -> MCPServer:
        """A remote server at ``url``, over streamable HTTP or, for older servers, SSE.

        Args:
            url: The endpoint (``http://127.0.0.1:8000/mcp``; ``.../sse`` for SSE servers).
            headers: HTTP headers sent with every request (an ``Authorization`` token, say).
            transport: ``"streamable-http"`` (current MCP), ``"sse"`` (older servers), or ``"auto"``: try streamable
                HTTP, then SSE.
            **options: `MCPServer` options (``name``, ``prefix``, ``timeout``, ...).
        """
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"an MCP server URL must start with http:// or https://, not {url[:80]!r}")
        if transport not in ("auto", "streamable-http", "sse"):
            raise ConfigError(f"unknown MCP HTTP transport {transport!r}; use 'streamable-http', 'sse' or 'auto'")
        return cls(HttpEndpoint(url, dict(headers or {}), transport), **options)

    def __repr__(self) -> str:
        return f"MCPServer({self.name!r}, running={self.running})"

    @property
    def running(self) -> bool:
        """Whether the server is started and usable."""
        return self._client is not None and self._dead is None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _stderr_note(self) -> str:
        text = self._stderr.text() if self._stderr is not None else ""
        return f"; its stderr ends with: {text}" if text else ""

    async def _connect(self, stack: AsyncExitStack, kind: HttpKind | None) -> Client:
        t = self.transport
        if isinstance(t, StdioTransport):
            self._stderr = StderrTail(self.name)
            stack.callback(self._stderr.close_writer)
            params = StdioServerParameters(
                command=t.command, args=list(t.args), env=dict(t.env) if t.env else None, cwd=t.cwd,
                encoding_error_handler="replace",
            )
            transport: Any = stdio_client(params, errlog=self._stderr.file)
        elif kind == "sse":
            transport = sse_client(t.url, headers=dict(t.headers), timeout=self.start_timeout)
        else:
            http = create_mcp_http_client(headers=dict(t.headers))
            await stack.enter_async_context(http)
            transport = streamable_http_client(t.url, http_client=http)
        client = Client(
            transport, cache=None, client_info=types.Implementation(name="qwenkit", version="0.1.0"),
            message_handler=self._on_message,
        )
        await stack.enter_async_context(client)
        if self._stderr is not None:
            self._stderr.close_writer()  # the child holds its own copy; EOF now means it exited
        return client

    async def _on_message(self, message: Any) -> None:
        """Notice output that is not MCP: during the start it fails the start at once instead of at the timeout."""
        if not isinstance(message, Exception):
            return
        if isinstance(message, ValidationError) and message.errors():
            what = f"it wrote something that is not MCP: {clean_text(repr(message.errors()[0].get('input'))[:120])[0]}"
        else:
            what = f"its output could not be read ({_describe(message)})"
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_exception(MCPServerError(what))
        else:
            log.warning("MCP server %r: %s", self.name, what)

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event, kind: HttpKind | None) -> None:
        """The background task that enters and leaves the SDK client (see the module docstring)."""
        connected = False
        try:
            async with AsyncExitStack() as stack:
                client = await self._connect(stack, kind)
                if not ready.done():
                    ready.set_result(client)
                    connected = True
                await stop.wait()
        except BaseException as exc:  # recorded for the caller: a task must not fail unseen
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(_describe(exc)))
            elif connected and not stop.is_set() and self._dead is None:
                self._dead = _describe(exc)
            if isinstance(exc, asyncio.CancelledError) and not stop.is_set():
                raise
        finally:
            if not ready.done():
                ready.set_exception(MCPServerError("it stopped while starting"))
        if connected and not stop.is_set() and self._dead is None:
            self._dead = "its connection ended"

    async def start(self) -> None:
        """Start the server and complete the MCP handshake; nothing happens if it is already running.

        Raises:
            MCPServerError: The command does not exist, the process exited, it does not speak MCP, or it did
                not answer within ``start_timeout``.
        """
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is not None:
                self._require()
                return
            self._dead = None
            self._loop = loop
            t = self.transport
            kinds: list[HttpKind | None] = [None]
            if isinstance(t, HttpEndpoint):
                # "auto" (a URL without a type): current servers speak streamable HTTP, older ones SSE; the MCP
                # spec's advice for clients is to try the first, then the second.
                kinds = ["streamable-http", "sse"] if t.kind == "auto" else [t.kind]
            failures: list[str] = []
            for kind in kinds:
                try:
                    client = await self._attempt(loop, kind)
                except MCPServerError as err:
                    failures.append(f"{kind}: {err}" if len(kinds) > 1 else str(err))
                    continue
                break
            else:
                raise MCPServerError(
                    f"MCP server {self.name!r} ({t.describe()[:200]}) could not be started: "
                    f"{'; '.join(failures)}{self._stderr_note()}"
                )
            self._client = client
            if self._outputs_dir is None:
                self._temp_dir = Path(tempfile.mkdtemp(prefix="qwenkit-mcp-"))
            folder = self._outputs_dir or self._temp_dir
            assert folder is not None
            self._budget = OutputsBudget(folder, self._outputs_max_bytes)

    async def _attempt(self, loop: asyncio.AbstractEventLoop, kind: HttpKind | None) -> Client:
        """One start: spawn or connect and complete the handshake, within ``start_timeout``.

        Raises:
            MCPServerError: Saying what went wrong (without the server's name: `start` adds it).
        """
        self._ready = ready = loop.create_future()
        self._stop = stop = asyncio.Event()
        self._task = asyncio.create_task(self._own(ready, stop, kind), name=f"mcp-server {self.name}")
        try:
            async with asyncio.timeout(self.start_timeout):
                return await asyncio.shield(ready)
        except TimeoutError:
            await self._halt(cancel=True)
            _consume(ready)
            raise MCPServerError(
                f"it did not complete the MCP handshake within {self.start_timeout:g} s (is it an MCP server?)"
            ) from None
        except asyncio.CancelledError:
            await self._halt(cancel=True)
            _consume(ready)
            raise
        except Exception as exc:
            await self._halt(cancel=True)
            leaf = _leaf(exc)
            if isinstance(leaf, MCPError) and leaf.code == types.CONNECTION_CLOSED and self._stderr is not None:
                raise MCPServerError(
                    "the process exited (or closed its stdout) before completing the MCP handshake"
                ) from None
            raise MCPServerError(_describe(exc)) from None

    async def _halt(self, *, cancel: bool = False) -> None:
        """Stop the background task, waiting a bounded time.

        Args:
            cancel: Cancel the task at once (a start that failed midway: it is not waiting to be told to stop).
        """
        task, stop = self._task, self._stop
        self._task = None
        self._client = None
        if stop is not None:
            stop.set()
        if task is None:
            return
        if not cancel:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await asyncio.shield(task)
            if not task.done():
                log.warning("MCP server %r did not stop within %g s; cancelling its connection", self.name,
                            STOP_TIMEOUT_S)
        if not task.done():
            task.cancel()
            # The SDK's stdio shutdown is shielded and bounded (stdin closed, then SIGTERM, then SIGKILL).
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await task

    async def aclose(self) -> None:
        """Stop the server (a local process is asked to exit, then killed) and remove its temporary files.

        Idempotent. The server can be started again afterwards.
        """
        if self._task is not None and self._loop is not asyncio.get_running_loop():
            raise MCPServerError(f"MCP server {self.name!r} must be closed in the event loop that started it")
        await self._halt()
        self._tools = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- use ------------------------------------------------------------------------------------------

    def _require(self) -> Client:
        """The live client, or the error that explains why there is none."""
        if self._dead is None and self._task is not None and self._task.done():
            self._dead = "its connection ended"
        if self._dead is not None:
            raise MCPServerError(f"MCP server {self.name!r} is not running: {self._dead}{self._stderr_note()}")
        if self._client is None:
            raise MCPServerError(f"MCP server {self.name!r} is not started; use `async with server:` or `start()`")
        if self._loop is not asyncio.get_running_loop():
            raise MCPServerError(
                f"MCP server {self.name!r} was started in another event loop; start it in the loop that uses it"
            )
        return self._client

    async def tools(self) -> list[Tool]:
        """The server's tools as qwenkit tools (listed once, then cached); starts the server if needed.

        Tools whose name or input schema is invalid are skipped with a warning naming them.

        Raises:
            MCPServerError: The server cannot be started or does not answer the listing in time.
        """
        await self.start()
        if self._tools is None:
            self._tools = build_tools(self, await self._list_tools())
        return list(self._tools)

    async def _list_tools(self) -> list[types.Tool]:
        client = self._require()
        listed: list[types.Tool] = []
        cursor: str | None = None
        try:
            for _ in range(MAX_LIST_PAGES):
                async with asyncio.timeout(self.start_timeout):
                    page = await client.list_tools(cursor=cursor)
                listed.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        except TimeoutError:
            raise MCPServerError(
                f"MCP server {self.name!r} did not list its tools within {self.start_timeout:g} s"
            ) from None
        except Exception as exc:
            if self._task is not None and self._task.done():
                self._dead = self._dead or _describe(exc)
            raise MCPServerError(
                f"MCP server {self.name!r} could not list its tools: {_describe(exc)}{self._stderr_note()}"
            ) from None
        return listed

    async def call(self, name: str, arguments: dict[str, Any], timeout: float | None = None) -> ToolOutput:
        """Call the server's tool ``name``; every failure of the call itself becomes an error output.

        Args:
            name: The tool's name on the server (without any prefix).
            arguments: Its arguments.
            timeout: Seconds before the call is cancelled on the server (default: ``self.timeout``).

        Raises:
            MCPServerError: The server is not running (it stopped earlier, or was never started).
        """
        client = self._require()
        limit = timeout if timeout is not None and timeout > 0 else self.timeout
        where = f"{name} (MCP server {self.name!r})"
        try:
            async with asyncio.timeout(limit + _CALL_GRACE_S):
                result = await client.call_tool(name, arguments, read_timeout_seconds=limit)
        except TimeoutError:
            return ToolOutput(text=f"Error: {where} did not finish within {limit:g} s and was cancelled.",
                              is_error=True)
        except MCPError as err:
            if err.code == types.REQUEST_TIMEOUT:
                return ToolOutput(text=f"Error: {where} did not finish within {limit:g} s; the call was cancelled "
                                       "on the server.", is_error=True)
            if err.code == types.CONNECTION_CLOSED:
                return self._died(name, "it closed the connection")
            return ToolOutput(text=f"Error: {where} refused the call: {clean_text(err.message[:2000])[0]}",
                              is_error=True)
        except ValidationError:
            return ToolOutput(text=f"Error: {where} returned a result that is not valid MCP.", is_error=True)
        except _TRANSPORT_ERRORS as exc:  # the pipe broke, the HTTP server went away: the connection is unusable
            return self._died(name, _describe(exc))
        except Exception as exc:  # anything else the SDK raises for this one call
            return ToolOutput(text=f"Error: {where} failed: {_describe(exc)}", is_error=True)
        folder = self._outputs_dir or self._temp_dir or Path(tempfile.gettempdir())
        # Images are decoded and written to disk (up to MAX_IMAGES x 20 MiB): not on the event loop.
        return await asyncio.to_thread(to_output, result, folder, self._budget)

    def _died(self, tool: str, reason: str) -> ToolOutput:
        self._dead = self._dead or reason
        return ToolOutput(
            text=f"Error: the MCP server {self.name!r} stopped while running {tool}: "
                 f"{self._dead}. Its tools cannot be used any more.",
            is_error=True,
        )


def quiet_sdk_logging() -> None:
    """Keep the ``mcp`` SDK's own log records (tracebacks for a server's garbage output) off the terminal.

    qwenkit reports those failures itself, in one line naming the server. Python prints records of a logger
    without handlers to stderr; a `logging.NullHandler` on the SDK's logger stops that, and an application that
    configures logging still receives them. For CLIs: a library must not change logging on import.
    """
    sdk = logging.getLogger("mcp")
    if not any(isinstance(h, logging.NullHandler) for h in sdk.handlers):
        sdk.addHandler(logging.NullHandler())


async def gather_tools(servers: Iterable[MCPServer]) -> list[Tool]:
    """The tools of several servers, started as needed, with names checked for clashes.

    Raises:
        MCPServerError: A server cannot be started or listed.
        ConfigError: Two servers offer a tool of the same name (give one of them a ``prefix``).
    """
    tools: list[Tool] = []
    owner: dict[str, MCPServer] = {}
    for server in servers:
        for tool in await server.tools():
            other = owner.get(tool.name)
            if other is not None:
                raise ConfigError(
                    f"MCP servers {other.name!r} and {server.name!r} both have a tool named {tool.name!r}; "
                    "give one of them a prefix"
                )
            owner[tool.name] = server
            tools.append(tool)
    return tools


@contextlib.asynccontextmanager
async def started(servers: Sequence[MCPServer]) -> AsyncIterator[list[Tool]]:
    """Start every server, yield all their tools (names checked for clashes), and close them all at the end."""
    async with AsyncExitStack() as stack:
        for server in servers:
            await stack.enter_async_context(server)
        yield await gather_tools(servers)
