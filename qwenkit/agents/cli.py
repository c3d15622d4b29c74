"""`qwenkit run` and `qwenkit chat`: an agent over a model server or the embedded model, from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from qwenkit._cli.approval import APPROVE_MODES, decide
from qwenkit._cli.args import non_negative_float, positive_int, seed
from qwenkit._cli.output import check_text, decode_input, event_json, print_error, read_stdin_text
from qwenkit._cli.settings import add_model_options, check_server_settings, server_urls
from qwenkit._cli.tracing import TRACE_MODES, install_tracing
from qwenkit.agents.agent import Agent
from qwenkit.agents.console import EventPrinter
from qwenkit.agents.events import Event, RunFinished, RunResult
from qwenkit.errors import ConfigError, TranscriptError
from qwenkit.llm.base import ChatModel, Sampling
from qwenkit.llm.formats import FORMAT_NAMES
from qwenkit.tools.base import Tool, Toolset
from qwenkit.tools.builtin.catalog import BUILTIN_TOOLS, make_tools
from qwenkit.types import Message

if TYPE_CHECKING:
    from qwenkit.llm.autoformat import FormatChoice

STDIN = "-"
"""The question ``-`` means: read it from standard input."""
MAX_CHAT_LINE_BYTES = 1024 * 1024
"""Longest line ``chat`` reads from a pipe."""


def add_agent_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``chat``."""
    add_model_options(p)
    p.add_argument("--local", metavar="NAME_OR_PATH", default=None,
                   help="use the embedded llama.cpp model (a store name or a .gguf path); the default when "
                        "no --base-url is given")
    p.add_argument("--format", choices=("auto", *FORMAT_NAMES), default="auto",
                   help="prompt format: how tools and calls are written in the prompt (default: auto, chosen "
                        "from the model's own chat template; nous when none is visible)")
    p.add_argument("--chat-template", metavar="PATH", default=None,
                   help="a chat template to use instead of the model's own: a Jinja file, a tokenizer_config.json, "
                        "or a model folder holding chat_template.jinja or tokenizer_config.json. The embedded "
                        "model renders its prompts with it; with --base-url the server renders with its own, "
                        "and the file only chooses --format auto's format")
    p.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                   help="Qwen3 thinking on or off (enable_thinking in its chat template; default: the template's)")
    p.add_argument("--tool", action="append", default=[], choices=sorted(BUILTIN_TOOLS), metavar="NAME",
                   help=f"enable a built-in tool (repeatable): {', '.join(sorted(BUILTIN_TOOLS))}")
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--max-steps", type=positive_int, default=8, help="most model calls per run (default: 8)")
    p.add_argument("--temperature", type=non_negative_float, default=0.0,
                   help="sampling temperature, 0 or more (default: 0, greedy)")
    p.add_argument("--seed", type=seed, default=0, help="sampling seed (default: 0)")
    p.add_argument("--max-tokens", type=positive_int, default=1024, help="most tokens per reply (default: 1024)")
    p.add_argument("--require-approval", action="append", default=[], choices=sorted(BUILTIN_TOOLS),
                   metavar="NAME", help="a person must approve each call of this built-in tool (repeatable)")
    p.add_argument("--approve", choices=APPROVE_MODES, default="ask",
                   help="how calls that need approval are decided: ask y/n on the terminal (default), "
                        "approve all, or deny all (none)")
    p.add_argument("--mcp", action="append", default=[], metavar="COMMAND_OR_URL",
                   help="take tools from an MCP server: a command (started over stdio) or an http(s) URL "
                        "(repeatable)")
    p.add_argument("--mcp-config", default=None, metavar="FILE",
                   help="take tools from the MCP servers of an mcpServers JSON file (Claude Desktop, Qwen-Agent)")
    p.add_argument("--kernels", default="local", metavar="local|gateway:URL",
                   help="where the code interpreter's kernels run: on this machine (default) or on a Jupyter "
                        "Kernel/Enterprise Gateway (token from QWENKIT_GATEWAY_TOKEN)")
    p.add_argument("--trace", choices=TRACE_MODES, default=None,
                   help="emit OpenTelemetry spans: console (on stderr) or otlp (OTEL_EXPORTER_OTLP_* settings)")


def uses_server(args: argparse.Namespace) -> bool:
    """Whether the flags pick a model server (``--base-url``) rather than the embedded model."""
    return args.local is None and bool(server_urls(args))


def _template_path(args: argparse.Namespace) -> Path | None:
    """``--chat-template`` as a path (namespaces built by other commands lack the flag)."""
    given: str | None = getattr(args, "chat_template", None)
    return None if given is None else Path(given).expanduser()


def load_chat_template(args: argparse.Namespace) -> str | None:
    """The text of ``--chat-template``, read and parsed (``None`` without the flag).

    Raises:
        ConfigError: The file is missing, unreadable, holds no template, or the template does not parse; the
            message names the flag and the file.
    """
    path = _template_path(args)
    if path is None:
        return None
    from qwenkit.llm.chat_template import load_template_file

    check_text(str(args.chat_template), "--chat-template")
    if not str(args.chat_template).strip():
        raise ConfigError("--chat-template is empty; give a Jinja file or a tokenizer folder")
    try:
        return load_template_file(path)
    except ConfigError as err:  # it names the file; say which flag named it
        raise ConfigError(f"--chat-template: {err}") from None


def template_format_choice(args: argparse.Namespace) -> FormatChoice | None:
    """The format ``--format auto`` takes from ``--chat-template`` for a model server; ``None`` otherwise.

    A server renders prompts with its own template, so the file only tells which format the model was
    trained on. The embedded model needs no choice here: it renders with the file, and `LocalModel`
    shows the file to ``auto`` itself (`LocalModel.template_info`).

    Raises:
        ConfigError: The file cannot be read or parsed, the probe conversation fails to render with it, or
            ``--format`` is not ``auto`` (the file would then have no use with a server).
    """
    text = load_chat_template(args)
    if text is None:
        return None
    server = uses_server(args)
    if server and args.format != "auto":
        raise ConfigError(f"--chat-template with --base-url only chooses the prompt format (the server renders "
                          f"prompts with its own template), so it has no use with --format {args.format}; drop "
                          "one of them")
    if args.format != "auto":
        return None
    from qwenkit.llm.autoformat import choose_format
    from qwenkit.llm.template_info import TemplateInfo

    source = f"the chat template file {_template_path(args)}"
    if server:
        source += " (--chat-template; the server renders prompts with its own)"
    try:  # also for the embedded model: a template that fails on a tool call is refused now, not mid-run
        choice = choose_format(TemplateInfo(source=source, template=text))
    except ConfigError as err:
        raise ConfigError(f"--chat-template: {err}") from None
    return choice if server else None


def check_question(question: str, what: str = "the question") -> str:
    """Refuse an empty question or one that is not valid text; returns it unchanged.

    Raises:
        ConfigError: The question is empty or holds bytes that are not UTF-8.
    """
    check_text(question, what)
    if not question.strip():
        raise ConfigError(f"{what} is empty")
    return question


def check_agent_args(args: argparse.Namespace) -> None:
    """Validate the parsed ``run``/``chat`` flags before anything is built (argparse checked the numbers).

    Raises:
        ConfigError: A setting is unusable; the message names the flag or environment variable.
    """
    question = getattr(args, "question", None)
    if question is not None and question != STDIN:
        check_question(question)
    if args.system is not None:
        check_text(args.system, "--system")
    if args.local is not None:
        check_text(args.local, "--local")
        if not args.local.strip():
            raise ConfigError("--local is empty; give a model name or a .gguf path")
    if uses_server(args):
        check_server_settings(args)
    template_format_choice(args)  # a bad --chat-template is refused before anything is built
    from qwenkit.sandbox.choice import parse_kernels

    try:
        parse_kernels(getattr(args, "kernels", "local"))  # namespaces built by other commands lack it
    except ConfigError as err:
        raise ConfigError(f"--kernels: {err}") from None


def make_model(args: argparse.Namespace) -> ChatModel:
    """Pick the backend from the flags: ``--local`` (embedded), else ``--base-url`` + ``--model``."""
    if not uses_server(args):
        return _local_model(args.local, _template_path(args))
    check_server_settings(args)
    from qwenkit.llm.openai_compat import OpenAICompatible

    try:  # several URLs: replicas of one model, balanced by the client
        return OpenAICompatible(args.model, server_urls(args), args.api_key)
    except ConfigError as err:  # the library describes the problem; say which settings it came from
        raise ConfigError(f"model server settings (--base-url, --model, --api-key): {err}") from None


def _local_model(name_or_path: str | None, chat_template: Path | None = None) -> ChatModel:
    """The embedded model: a GGUF path, a store name, or the store's default model; ``chat_template``: a
    template file to render prompts with instead of the GGUF's own (``--chat-template``)."""
    from qwenkit.llm.local import LocalModel
    from qwenkit.llm.store import DEFAULT_MODEL, ModelStore

    # The store and the backend describe the problem; say which setting chose the model.
    where = "--local" if name_or_path else "the embedded model (used without --base-url or QWENKIT_BASE_URL)"
    try:
        if name_or_path and name_or_path.endswith(".gguf"):
            if not Path(name_or_path).is_file():
                raise ConfigError(f"no GGUF file at {name_or_path}")
            path = Path(name_or_path)
        else:
            path = ModelStore().path(name_or_path or DEFAULT_MODEL)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    try:  # LocalModel reads and parses the template file; its errors name the file
        return LocalModel(path, chat_template=chat_template)
    except ConfigError as err:
        raise ConfigError(f"--chat-template: {err}" if chat_template is not None else f"{where}: {err}") from None


def make_agent(args: argparse.Namespace) -> Agent:
    """Build the agent the flags describe (call `check_agent_args` first for flag-naming errors)."""
    if args.trace:
        install_tracing(args.trace)
    sampling = Sampling(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)
    tools: list[Tool | Toolset] = list(make_tools([*args.tool, *args.require_approval],  # enabled too
                                                  kernels=args.kernels))
    for t in tools:
        if isinstance(t, Tool) and t.name in args.require_approval:
            t.requires_approval = True
    if args.mcp or args.mcp_config:
        from qwenkit.mcp import quiet_sdk_logging, servers_from_cli

        quiet_sdk_logging()
        tools += servers_from_cli(args.mcp, args.mcp_config)  # started on the first run, closed by aclose
    choice = template_format_choice(args)
    agent: Agent = Agent(make_model(args), tools=tools, format=choice.name if choice else args.format,
                         system=args.system, max_steps=args.max_steps, sampling=sampling, thinking=args.thinking)
    if choice is not None:  # say why, as auto would have: `_run_once` prints it
        agent.format_choice = choice
    return agent


def format_from_template_flag(args: argparse.Namespace) -> bool:
    """Whether ``--chat-template`` chose the format before the run (a server with ``--format auto``), so the
    line saying which format and why is printed although the agent's format is already set."""
    return getattr(args, "chat_template", None) is not None and uses_server(args) and args.format == "auto"


async def _run_once(agent: Agent, prompt: str, *, as_json: bool, console: Console, approve: str,
                    history: list[Message] | None = None, conversation_id: str | None = None,
                    transcript: str | None = None, announce_format: bool = False) -> RunResult:
    """One run, printed as it goes; a run that waits for approval is decided (``approve``) and resumed.

    The format ``auto`` chose is announced in one line the first time it is chosen, or when
    ``announce_format`` says it was chosen before (from ``--chat-template``).
    """
    show = EventPrinter(console)

    async def shown(events: AsyncIterator[Event]) -> RunResult:
        result: RunResult | None = None
        async for event in events:
            if as_json:
                if event.type not in ("text_delta", "reasoning_delta"):
                    sys.stdout.write(event_json(event) + "\n")
                    sys.stdout.flush()
            else:
                show(event)
            if isinstance(event, RunFinished):
                result = event.result
        assert result is not None, "a run always ends with RunFinished"
        return result

    if agent.format_choice is None or announce_format:  # format auto: say once which format was chosen, and why
        await agent.resolve_format()
        if agent.format_choice is not None and not as_json:  # JSON output stays pure events
            choice = agent.format_choice
            console.print(f"prompt format: {choice.name} ({escape(choice.reason)})", style="dim", highlight=False,
                          soft_wrap=True)
    try:
        result = await shown(agent.stream(prompt, history=history, conversation_id=conversation_id,
                                          transcript=transcript))
        while result.status == "awaiting_approval":
            decisions = await asyncio.to_thread(decide, result.pending_approvals, approve)
            result = await shown(agent.stream_resume(transcript if transcript is not None else result,
                                                     approvals=decisions))
    except TranscriptError as err:
        raise type(err)(f"--transcript {transcript}: {err}") from None
    return result


def _exit_code(result: RunResult) -> int:
    """0 when the run ended with an answer (after the final-answer call too), 1 without one, 2 on error."""
    if result.status == "error":
        print_error(result.error or "the run failed")
        return 2
    return 0 if result.answer.strip() else 1


def cmd_run(args: argparse.Namespace) -> int:
    """``qwenkit run``: answer one question (``-``: read it from standard input)."""
    question = args.question
    if question == STDIN:
        question = check_question(read_stdin_text("the question"), "the question on standard input")
    agent = make_agent(args)
    cid = uuid.uuid4().hex

    async def go() -> RunResult:
        try:
            # An explicit conversation keeps the interpreter's state while the run waits for an approval.
            return await _run_once(agent, question, as_json=args.json, console=Console(), approve=args.approve,
                                   transcript=args.transcript, conversation_id=cid,
                                   announce_format=format_from_template_flag(args))
        finally:
            await agent.close_conversation(cid)
            await agent.aclose()

    return _exit_code(asyncio.run(go()))


def _read_line(line_number: int) -> str | None:
    """The next line the user typed or piped, without its newline; ``None`` at the end of input.

    Raises:
        ConfigError: The line is not UTF-8 (or, from a pipe, longer than `MAX_CHAT_LINE_BYTES`).
    """
    what = f"line {line_number} of standard input"
    if sys.stdin.isatty():  # input() gives line editing on a terminal
        try:
            line = input("you> ")
        except EOFError:
            return None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{what} is not valid UTF-8 ({err.reason})") from None
        check_text(line, what)  # a POSIX-locale terminal decodes bad bytes to lone surrogates
        return line
    sys.stdout.write("you> ")
    sys.stdout.flush()
    data = sys.stdin.buffer.readline(MAX_CHAT_LINE_BYTES + 1)
    if not data:
        return None
    if len(data) > MAX_CHAT_LINE_BYTES:
        raise ConfigError(f"{what} is longer than {MAX_CHAT_LINE_BYTES // 1024} KiB")
    return decode_input(data, what).rstrip("\r\n")


def cmd_chat(args: argparse.Namespace) -> int:
    """``qwenkit chat``: a conversation on the terminal; tools keep their state between turns."""
    agent = make_agent(args)
    console = Console()
    console.print("[dim]qwenkit chat: /reset starts over, /exit or Ctrl-D quits[/dim]")

    async def go() -> int:
        history: list[Message] = []
        cid = uuid.uuid4().hex
        line_number = 0
        announce = format_from_template_flag(args)  # once, on the first turn
        try:
            while True:
                line_number += 1
                line = await asyncio.to_thread(_read_line, line_number)
                if line is None or line.strip() in ("/exit", "/quit"):
                    return 0
                if line.strip() == "/reset":
                    await agent.close_conversation(cid)
                    history, cid = [], uuid.uuid4().hex
                    continue
                if not line.strip():
                    continue
                result = await _run_once(agent, line, as_json=False, console=console, approve=args.approve,
                                         history=history, conversation_id=cid, announce_format=announce)
                announce = False
                if result.status == "error":
                    console.print(f"[red]error:[/red] {escape(result.error or 'the run failed')}", highlight=False)
                else:
                    history = result.messages
        finally:
            await agent.close_conversation(cid)
            await agent.aclose()

    return asyncio.run(go())


def register(sub: Any) -> None:
    """Add ``run`` and ``chat`` to the ``qwenkit`` command."""
    run = sub.add_parser("run", help="answer one question with an agent, streaming its steps")
    run.add_argument("question", help="the question; '-' reads it from standard input")
    add_agent_options(run)
    run.add_argument("--json", action="store_true", help="print events as JSON Lines instead of text")
    run.add_argument("--transcript", default=None, help="append every event to this JSON Lines file")
    run.set_defaults(handler=cmd_run, check=check_agent_args)
    chat = sub.add_parser("chat", help="talk with an agent in the terminal (tools keep their state)")
    add_agent_options(chat)
    chat.set_defaults(handler=cmd_chat, check=check_agent_args)
