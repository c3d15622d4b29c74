"""`qwenkit run` and `qwenkit chat`: an agent over a model server or the embedded model, from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

from rich.console import Console

from qwenkit.agents.agent import Agent
from qwenkit.agents.console import EventPrinter
from qwenkit.agents.events import RunFinished, RunResult
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats import FORMAT_NAMES
from qwenkit.tools.builtin.catalog import BUILTIN_TOOLS, make_tools
from qwenkit.types import Message


def add_agent_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``chat``."""
    from qwenkit.cli import add_model_options

    add_model_options(p)
    p.add_argument("--local", metavar="NAME_OR_PATH", default=None,
                   help="use the embedded llama.cpp model (a store name or a .gguf path); the default when "
                        "no --base-url is given")
    p.add_argument("--format", choices=FORMAT_NAMES, default="qwen", help="prompt format (default: qwen)")
    p.add_argument("--tool", action="append", default=[], choices=sorted(BUILTIN_TOOLS), metavar="NAME",
                   help=f"enable a built-in tool (repeatable): {', '.join(sorted(BUILTIN_TOOLS))}")
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--max-steps", type=int, default=8, help="most model calls per run (default: 8)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=1024)


def make_model(args: argparse.Namespace) -> ChatModel:
    """Pick the backend from the flags: ``--local`` (embedded), else ``--base-url`` + ``--model``."""
    if args.local is not None or not args.base_url:
        return _local_model(args.local)
    if not args.model:
        raise ConfigError("--model (or QWENKIT_MODEL) is required with --base-url")
    from qwenkit.llm.openai_compat import OpenAICompatible

    return OpenAICompatible(args.model, args.base_url, args.api_key)


def _local_model(name_or_path: str | None) -> ChatModel:
    """The embedded model: a GGUF path, a store name, or the store's default model."""
    from pathlib import Path

    from qwenkit.llm.local import LocalModel
    from qwenkit.llm.store import DEFAULT_MODEL, ModelStore

    if name_or_path and name_or_path.endswith(".gguf"):
        if not Path(name_or_path).is_file():
            raise ConfigError(f"no GGUF file at {name_or_path}")
        return LocalModel(name_or_path)
    return LocalModel(ModelStore().path(name_or_path or DEFAULT_MODEL))


def make_agent(args: argparse.Namespace) -> Agent:
    if args.max_steps < 1:
        raise ConfigError("--max-steps must be at least 1")
    sampling = Sampling(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)
    return Agent(make_model(args), tools=make_tools(args.tool), format=args.format, system=args.system,
                 max_steps=args.max_steps, sampling=sampling)


async def _run_once(agent: Agent, prompt: str, *, as_json: bool, console: Console,
                    history: list[Message] | None = None, conversation_id: str | None = None,
                    transcript: str | None = None) -> RunResult:
    show = EventPrinter(console)
    result: RunResult | None = None
    async for event in agent.stream(prompt, history=history, conversation_id=conversation_id,
                                    transcript=transcript):
        if as_json:
            if event.type != "text_delta":
                sys.stdout.write(event.model_dump_json() + "\n")
                sys.stdout.flush()
        else:
            show(event)
        if isinstance(event, RunFinished):
            result = event.result
    assert result is not None
    return result


def _exit_code(result: RunResult) -> int:
    """0 when the run ended with an answer (after the last-word call too), 1 without one, 2 on error."""
    if result.status == "error":
        from qwenkit.cli import print_error

        print_error(result.error or "the run failed")
        return 2
    return 0 if result.answer.strip() else 1


def cmd_run(args: argparse.Namespace) -> int:
    agent = make_agent(args)

    async def go() -> RunResult:
        try:
            return await _run_once(agent, args.question, as_json=args.json, console=Console(),
                                   transcript=args.transcript)
        finally:
            await agent.aclose()

    return _exit_code(asyncio.run(go()))


def cmd_chat(args: argparse.Namespace) -> int:
    agent = make_agent(args)
    console = Console()
    console.print("[dim]qwenkit chat: /reset starts over, /exit or Ctrl-D quits[/dim]")

    async def go() -> int:
        history: list[Message] = []
        cid = uuid.uuid4().hex
        try:
            while True:
                try:
                    line = await asyncio.to_thread(input, "you> ")
                except EOFError:
                    return 0
                if line.strip() in ("/exit", "/quit"):
                    return 0
                if line.strip() == "/reset":
                    await agent.close_conversation(cid)
                    history, cid = [], uuid.uuid4().hex
                    continue
                if not line.strip():
                    continue
                result = await _run_once(agent, line, as_json=False, console=console, history=history,
                                         conversation_id=cid)
                if result.status == "error":
                    console.print(f"[red]error:[/red] {result.error}", highlight=False)
                else:
                    history = result.messages
        finally:
            await agent.close_conversation(cid)
            await agent.aclose()

    return asyncio.run(go())


def register(sub: Any) -> None:
    """Add ``run`` and ``chat`` to the ``qwenkit`` command."""
    run = sub.add_parser("run", help="answer one question with an agent, streaming its steps")
    run.add_argument("question")
    add_agent_options(run)
    run.add_argument("--json", action="store_true", help="print events as JSON Lines instead of text")
    run.add_argument("--transcript", default=None, help="append every event to this JSON Lines file")
    run.set_defaults(handler=cmd_run)
    chat = sub.add_parser("chat", help="talk with an agent in the terminal (tools keep their state)")
    add_agent_options(chat)
    chat.set_defaults(handler=cmd_chat)
