"""`create_app`: the agent HTTP server as an ASGI (Starlette) app.

Routes (all JSON unless said; ``{cid}`` is a conversation id):

- ``GET /``: the web chat; ``/static/...`` its files.
- ``GET /api/info``: the model, tools and limits.
- ``POST /api/conversations`` (``{"title"}``, optional) → 201; ``GET /api/conversations``: the caller's.
- ``GET /api/conversations/{cid}``: messages and events (``?after=N``: only events after id N);
  ``DELETE``: stops its turn, kills its kernel, removes its transcript.
- ``POST /api/conversations/{cid}/turns`` (``{"prompt"}``): runs a turn; answers with its events as
  Server-Sent Events (``id:`` = event id, ``event:`` = type, ``data:`` = JSON) until ``turn_ended``.
  The turn goes on if the client goes away. 409 while another turn runs.
- ``GET /api/conversations/{cid}/events``: the events after ``Last-Event-ID`` (or ``?after=``), then live
  ones while a turn runs.
- ``POST .../stop``: cancel the running turn (the model call, and the cell: its kernel is interrupted).
- ``POST .../restart``: a fresh kernel for the conversation (its state and files are gone).
- ``GET .../files``; ``PUT .../files/{name}`` (raw body) uploads into the sandbox's working directory;
  ``GET .../files/{path}`` downloads; ``GET .../figures/{n}``: a figure of the conversation.
- ``POST /v1/chat/completions``, ``GET /v1/models``: the OpenAI-compatible façade.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from qwenkit.agents.agent import Agent
from qwenkit.errors import QwenkitError, SandboxError
from qwenkit.server import openai_compat, sandbox_files
from qwenkit.server.auth import AccessMiddleware
from qwenkit.server.bodies import HTTPProblem, NewConversation, NewTurn, parse_body, read_capped
from qwenkit.server.conversations import Conversation, ConversationStore
from qwenkit.server.sandbox_files import FileRefused
from qwenkit.server.settings import ServerSettings
from qwenkit.server.turns import run_turn
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter

AgentFactory = Callable[[], "Agent[Any] | Awaitable[Agent[Any]]"]
"""Builds the server's agent (called once, at startup, in the server's event loop)."""

STATIC_DIR = Path(__file__).parent / "static"
STOP_WAIT_S = 15.0
"""Seconds `stop` and `delete` wait for a cancelled turn to wind down."""


class AgentServer:
    """The server's state: its agent, conversations and data folder. Made by `create_app`."""

    def __init__(self, agent_factory: AgentFactory, settings: ServerSettings) -> None:
        self.factory = agent_factory
        self.settings = settings
        self._agent: Agent[Any] | None = None
        self._own_dir: Path | None = None
        self.store: ConversationStore | None = None

    @property
    def agent(self) -> Agent[Any]:
        if self._agent is None:
            raise RuntimeError("the server has not started (its lifespan did not run)")
        return self._agent

    @property
    def conversations(self) -> ConversationStore:
        if self.store is None:
            raise RuntimeError("the server has not started (its lifespan did not run)")
        return self.store

    @property
    def interpreter(self) -> CodeInterpreter | None:
        """The agent's code interpreter, if it has one."""
        for name in self.agent.tools.names:
            tool = self.agent.tools.get(name)
            if isinstance(tool, CodeInterpreter):
                return tool
        return None

    async def start(self) -> None:
        """Build the agent and the data folder."""
        made = self.factory()
        self._agent = await made if inspect.isawaitable(made) else made
        if self.settings.data_dir is not None:
            data = self.settings.data_dir
        else:
            data = self._own_dir = Path(tempfile.mkdtemp(prefix="qwenkit-server-"))
        transcripts = data / "transcripts"
        transcripts.mkdir(parents=True, exist_ok=True)
        self.store = ConversationStore(transcripts, self.settings.max_events, self.settings.max_conversations)

    async def aclose(self) -> None:
        """Stop every turn, kill every kernel, close the agent."""
        if self.store is not None:
            for conv in self.store.all():
                await self.stop_turn(conv)
        if self._agent is not None:
            await self._agent.aclose()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    async def stop_turn(self, conv: Conversation) -> bool:
        """Cancel the conversation's running turn and wait for it to wind down; whether one ran."""
        task = conv.task
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_WAIT_S)
        return True

    async def delete(self, conv: Conversation) -> None:
        """Stop its turn, kill its kernel, forget it and remove its transcript."""
        await self.stop_turn(conv)
        self.conversations.remove(conv.id)
        await self.agent.close_conversation(conv.id)
        conv.transcript.unlink(missing_ok=True)


def _owner(request: Request) -> str:
    return str(request.scope.get("state", {}).get("owner", ""))


def _conversation(request: Request) -> Conversation:
    server: AgentServer = request.app.state.server
    conv = server.conversations.get(request.path_params["cid"], _owner(request))
    if conv is None:
        raise HTTPProblem(404, "no such conversation")
    return conv


def _idle(conv: Conversation, what: str) -> None:
    if conv.running:
        raise HTTPProblem(409, f"a turn is running in this conversation; stop it or wait before {what}")


def _interpreter(request: Request) -> CodeInterpreter:
    interp = request.app.state.server.interpreter
    if interp is None:
        raise HTTPProblem(404, "this agent has no code interpreter, so there is no sandbox for files")
    return interp


def _sse(conv: Conversation, after: int, *, until_turn_end: bool) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        async for event in conv.follow(after, until_turn_end=until_turn_end):
            if event is None:
                yield ": keep-alive\n\n"
                continue
            data = json.dumps(event.data)  # ASCII escapes: any lone surrogate from a tool stays encodable
            yield f"id: {event.id}\nevent: {event.data.get('type', 'message')}\ndata: {data}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPProblem(422, "Last-Event-ID (or after): must be a non-negative integer event id",
                          [{"loc": ["header", "last-event-id"], "msg": "not an event id"}])
    return int(raw)


# ------------------------------------------------------------------------------------------------ routes

async def index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


async def info(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    agent = server.agent
    return JSONResponse({
        "model": getattr(agent.model, "name", type(agent.model).__name__), "agent": agent.name,
        "tools": agent.tools.names, "code_interpreter": server.interpreter is not None,
        "max_upload_bytes": server.settings.max_upload_bytes, "requires_key": server.settings.requires_key,
    })


async def create_conversation(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    body = await parse_body(request, NewConversation, server.settings.max_body_bytes, optional=True)
    conv = server.conversations.create(_owner(request), body.title)
    if conv is None:
        raise HTTPProblem(429, f"this key holds {server.settings.max_conversations} conversations, the most "
                               "allowed; delete some first")
    return JSONResponse(conv.summary(), status_code=201)


async def list_conversations(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    return JSONResponse({"conversations": [c.summary() for c in server.conversations.list(_owner(request))]})


async def get_conversation(request: Request) -> Response:
    conv = _conversation(request)
    after = _after(request)
    return JSONResponse({
        **conv.summary(), "uploads": conv.uploads,
        "messages": [m.model_dump(mode="json") for m in conv.history],
        "events": [{"id": e.id, **e.data} for e in conv.after(after)],
    })


async def delete_conversation(request: Request) -> Response:
    conv = _conversation(request)
    await request.app.state.server.delete(conv)
    return Response(status_code=204)


async def post_turn(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    conv = _conversation(request)
    body = await parse_body(request, NewTurn, server.settings.max_body_bytes)
    if len(body.prompt) > server.settings.max_prompt_chars:
        raise HTTPProblem(422, f"body.prompt: longer than {server.settings.max_prompt_chars} characters",
                          [{"loc": ["body", "prompt"], "msg": "too long"}])
    _idle(conv, "sending another message")
    if not conv.title:
        conv.title = body.prompt.strip().splitlines()[0][:60] if body.prompt.strip() else "conversation"
    after = conv.last_id
    conv.task = asyncio.create_task(run_turn(server.agent, conv, body.prompt), name=f"turn-{conv.id}")
    return _sse(conv, after, until_turn_end=True)


async def events(request: Request) -> Response:
    conv = _conversation(request)
    return _sse(conv, _after(request), until_turn_end=False)


async def stop(request: Request) -> Response:
    conv = _conversation(request)
    stopped = await request.app.state.server.stop_turn(conv)
    return JSONResponse({"stopped": stopped})


async def restart(request: Request) -> Response:
    conv = _conversation(request)
    interp = _interpreter(request)
    _idle(conv, "restarting the kernel")
    if not conv.sandbox_used:
        return JSONResponse({"restarted": False})
    session = await interp.session(conv.id)
    await session.reset()
    conv.uploads.clear()  # the working directory went with the kernel
    conv.append({"type": "kernel_restarted"})
    return JSONResponse({"restarted": True})


async def list_files(request: Request) -> Response:
    conv = _conversation(request)
    interp = _interpreter(request)
    if not conv.sandbox_used:
        return JSONResponse({"files": []})
    _idle(conv, "listing files")
    return JSONResponse({"files": await sandbox_files.listing(await interp.session(conv.id))})


async def upload_file(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    conv = _conversation(request)
    name = sandbox_files.check_name(request.path_params["name"], allow_dirs=False)
    interp = _interpreter(request)
    _idle(conv, "uploading")
    data = await read_capped(request, server.settings.max_upload_bytes, "the upload")
    _idle(conv, "uploading")  # a turn may have started while the body arrived
    conv.sandbox_used = True
    stored = await sandbox_files.upload(await interp.session(conv.id), name, data)
    if name not in conv.uploads:
        conv.uploads.append(name)
    return JSONResponse(stored, status_code=201)


async def download_file(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    conv = _conversation(request)
    name = sandbox_files.check_name(request.path_params["name"], allow_dirs=True)
    interp = _interpreter(request)
    if not conv.sandbox_used:
        raise HTTPProblem(404, "no such file in the sandbox")
    _idle(conv, "downloading")
    data = await sandbox_files.download(await interp.session(conv.id), name, server.settings.max_download_bytes,
                                        interp.config.max_output_chars)
    filename = name.rsplit("/", 1)[-1]
    return Response(data, media_type="application/octet-stream", headers={
        # Always an attachment: a file the model wrote must never run as a page of this origin.
        "content-disposition": f"attachment; filename*=UTF-8''{_quote(filename)}",
    })


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


async def figure(request: Request) -> Response:
    conv = _conversation(request)
    path = conv.figures.get(request.path_params["n"])
    if path is None or not Path(path).is_file():
        raise HTTPProblem(404, "no such figure in this conversation")
    return FileResponse(path, media_type="image/png", headers={"cache-control": "private, max-age=3600"})


async def chat_completions(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    body = await parse_body(request, openai_compat.ChatCompletionRequest, server.settings.max_body_bytes)
    model = body.model or getattr(server.agent.model, "name", "qwenkit")
    if body.stream:
        return StreamingResponse(openai_compat.completion_chunks(server.agent, body, model),
                                 media_type="text/event-stream", headers={"cache-control": "no-cache"})
    result = await openai_compat.run_once(server.agent, body)
    return JSONResponse(openai_compat.completion_body(result, model))


async def models(request: Request) -> Response:
    server: AgentServer = request.app.state.server
    name = getattr(server.agent.model, "name", "qwenkit")
    return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "qwenkit"}]})


# ------------------------------------------------------------------------------------------------ errors

async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    body: dict[str, Any] = {"error": exc.message}
    if exc.fields is not None:
        body["detail"] = exc.fields
    return JSONResponse(body, status_code=exc.status)


async def _file_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FileRefused)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def _qwenkit_error(request: Request, exc: Exception) -> Response:
    status = 503 if isinstance(exc, SandboxError) else 500
    return JSONResponse({"error": str(exc) or type(exc).__name__, "type": type(exc).__name__}, status_code=status)


def create_app(agent_factory: AgentFactory, settings: ServerSettings | None = None) -> Starlette:
    """The server as an ASGI app; run it with uvicorn (see `qwenkit.server.cli.main`).

    Args:
        agent_factory: Builds the agent (sync or async), called once at startup inside the server's
            event loop; the server closes it (`Agent.aclose`) at shutdown. One agent serves every
            conversation (each conversation has its own kernel, keyed by its id).
        settings: Bind address, keys and limits.

    Raises:
        ConfigError: A public bind without API keys.
    """
    settings = settings or ServerSettings()
    settings.check()
    server = AgentServer(agent_factory, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.aclose()

    cid = "/api/conversations/{cid}"
    routes = [
        Route("/", index),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/api/info", info),
        Route("/api/conversations", create_conversation, methods=["POST"]),
        Route("/api/conversations", list_conversations, methods=["GET"]),
        Route(cid, get_conversation, methods=["GET"]),
        Route(cid, delete_conversation, methods=["DELETE"]),
        Route(f"{cid}/turns", post_turn, methods=["POST"]),
        Route(f"{cid}/events", events, methods=["GET"]),
        Route(f"{cid}/stop", stop, methods=["POST"]),
        Route(f"{cid}/restart", restart, methods=["POST"]),
        Route(f"{cid}/files", list_files, methods=["GET"]),
        Route(f"{cid}/files/{{name:path}}", upload_file, methods=["PUT"]),
        Route(f"{cid}/files/{{name:path}}", download_file, methods=["GET"]),
        Route(f"{cid}/figures/{{n:int}}", figure, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        HTTPProblem: _problem, FileRefused: _file_refused, QwenkitError: _qwenkit_error,
    })
    app.state.server = server
    app.add_middleware(AccessMiddleware, settings=settings)
    return app
