"""`LocalModel`: an embedded `ChatModel` over llama-cpp-python that runs a GGUF file in-process.

The prompt is the GGUF's own chat template (``tokenizer.chat_template``) rendered with Jinja2 the way
transformers and vLLM render it, so every prompt format sees the same text it would see on a server. A
trailing partial assistant turn (``continue_final``) is continued rather than closed, as vLLM's
``continue_final_message`` does. With ``tools`` (the native format) the template writes the tools and the
reply's ``<tool_call>`` blocks are parsed like vLLM's ``hermes`` tool parser; ``tool_choice`` ``required``
or a tool name is enforced by opening the call in the prompt.

llama.cpp blocks and one context is not thread-safe, so generation runs in a worker thread under a lock;
streamed deltas cross to the event loop through a queue as each token is decoded. The weights load on
first use, never at import.

Example:
    >>> from qwenkit.llm.store import ModelStore
    >>> model = LocalModel(ModelStore().ensure())
    >>> Agent(model, tools=[add], format="nous").run("What is 2+3?")
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import random
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenkit.errors import ConfigError, ModelError
from qwenkit.llm.base import ChatRequest, StreamChunk
from qwenkit.types import (
    AssistantMessage,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)

if TYPE_CHECKING:
    from llama_cpp import Llama

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_SAMPLER_OPTIONS = {"repetition_penalty": "repeat_penalty", "repeat_penalty": "repeat_penalty",
              "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
              "top_k": "top_k", "min_p": "min_p"}


class StopScanner:
    """Finds stop words in text that arrives piece by piece, as a server does.

    `push` returns the text that is safe to show: it holds back any tail that could be the start of a
    stop word, so a stop word is never partly streamed.

    Args:
        stops: The stop words (empty strings are ignored).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stop_word: str | None = None

    def push(self, text: str) -> str:
        """Add generated text; return what can be emitted. After a stop word is found, returns ``""``."""
        if self.stop_word is not None:
            return ""
        self.pending += text
        cut, word = len(self.pending), None
        for s in self.stops:
            i = self.pending.find(s)
            if i != -1 and i < cut:
                cut, word = i, s
        if word is not None:
            out, self.pending, self.stop_word = self.pending[:cut], "", word
            return out
        keep = max((_overlap(self.pending, s) for s in self.stops), default=0)
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep :]
        return out

    def flush(self) -> str:
        """Return the held-back text once generation has ended without a stop word."""
        out, self.pending = self.pending, ""
        return out


def _overlap(text: str, word: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of ``word``."""
    for n in range(min(len(text), len(word) - 1), 0, -1):
        if text.endswith(word[:n]):
            return n
    return 0


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Write typed messages as chat-template input (tool-call arguments as objects, as in transformers)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        match m:
            case SystemMessage() | UserMessage():
                out.append({"role": m.role, "content": m.content})
            case AssistantMessage():
                d: dict[str, Any] = {"role": "assistant", "content": m.content}
                if m.tool_calls:
                    d["tool_calls"] = [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for c in m.tool_calls
                    ]
                out.append(d)
            case ToolMessage():
                out.append({"role": "tool", "tool_call_id": m.tool_call_id, "name": m.name, "content": m.content})
    return out


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    continue_final: bool = False,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """Render a Hugging Face chat template into the prompt text.

    Args:
        template: Jinja2 source (a GGUF's ``tokenizer.chat_template``).
        messages: Chat-template messages (see `template_messages`).
        tools: OpenAI tool definitions to show the template.
        continue_final: The last message is an assistant turn to continue: the prompt ends where its
            content ends (surrounding whitespace stripped, as transformers and so vLLM do), and no new
            turn is opened. An empty final message opens a fresh assistant turn instead.
        bos_token: Text of the BOS token, for templates that write it.
        eos_token: Text of the EOS token.

    Raises:
        ModelError: The template fails, or ``continue_final`` is set and the last message is not an
            assistant message.
    """
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    msgs = list(messages)
    final = ""
    if continue_final:
        if not msgs or msgs[-1].get("role") != "assistant":
            raise ModelError("continue_final needs an assistant message last")
        final = str(msgs[-1].get("content") or "")
        if not final.strip():
            msgs = msgs[:-1]  # nothing to continue: open a fresh assistant turn instead
    add_generation_prompt = not continue_final or not final.strip()
    try:
        prompt = env.from_string(template).render(
            messages=msgs, tools=list(tools) if tools else None, add_generation_prompt=add_generation_prompt,
            bos_token=bos_token, eos_token=eos_token, raise_exception=raise_exception,
            strftime_now=lambda fmt: datetime.now().strftime(fmt),
        )
    except TemplateError as err:
        raise ModelError(f"the chat template failed: {err}") from err
    if continue_final and final.strip():
        # As transformers' continue_final_message: keep the prompt up to the end of the final content.
        end = prompt.rfind(final.strip())
        if end == -1:
            raise ModelError("the chat template did not write the final assistant message as given")
        prompt = prompt[: end + len(final.strip())]
    return prompt


def parse_tool_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """Read ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks, as vLLM's hermes parser.

    Returns the text before the first block and the calls. A block whose JSON cannot be read, or that
    has no ``name``, leaves the whole text as content and no calls, as the server does.
    """
    if TOOL_CALL_OPEN not in text:
        return text, ()
    content = text[: text.index(TOOL_CALL_OPEN)]
    calls: list[ToolCall] = []
    for block in text.split(TOOL_CALL_OPEN)[1:]:
        body = block.split(TOOL_CALL_CLOSE, 1)[0].strip()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            return text, ()
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return text, ()
        args = obj.get("arguments", {})
        raw = json.dumps(args, ensure_ascii=False)
        if isinstance(args, dict):
            calls.append(ToolCall(name=obj["name"], arguments=args, raw_arguments=raw))
        else:
            calls.append(ToolCall(name=obj["name"], raw_arguments=raw,
                                  arguments_error="the arguments are not a JSON object"))
    return content, tuple(calls)


def forced_call_prefix(tool_choice: str | None) -> str:
    """The text that opens the reply when ``tool_choice`` demands a call (``""`` otherwise)."""
    return "" if tool_choice in (None, "auto", "none") else f"{TOOL_CALL_OPEN}\n"


def tool_call_grammar(tools: Sequence[Mapping[str, Any]], tool_choice: str) -> str:
    """GBNF for the rest of a forced call: ``{"name": ..., "arguments": ...}`` then ``</tool_call>``.

    The name is one of the tools (``required``) or the named tool, and the arguments follow that tool's
    JSON schema, as vLLM's guided decoding does for ``tool_choice`` ``required`` or a name.

    Raises:
        ModelError: ``tool_choice`` names a tool that is not among ``tools``.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    functions = [t.get("function", t) for t in tools]
    chosen = [f for f in functions if tool_choice == "required" or f.get("name") == tool_choice]
    if not chosen:
        raise ModelError(f"tool_choice {tool_choice!r} is not one of the tools")
    schema = {"anyOf": [
        {"type": "object", "required": ["name", "arguments"], "properties": {
            "name": {"const": f["name"]}, "arguments": f.get("parameters") or {"type": "object"},
        }}
        for f in chosen
    ]}
    gbnf = json_schema_to_gbnf(json.dumps(schema), prop_order=["name", "arguments"])
    return gbnf.replace("root ::=", "call ::=", 1) + f'\nroot ::= call "\\n{TOOL_CALL_CLOSE}"\n'


@dataclass(frozen=True)
class _Job:
    """One generation: the prompt and how to sample, decided before the worker thread starts."""

    prompt: str
    forced: str
    grammar: str | None
    parse_tools: bool
    stop: list[str]
    max_tokens: int | None
    temperature: float
    top_p: float
    seed: int | None
    options: dict[str, float]


class LocalModel:
    """A `ChatModel` that runs a GGUF file in-process with llama.cpp.

    Args:
        path: The GGUF file (see ``qwenkit models pull``).
        n_ctx: Context length in tokens.
        n_threads: CPU threads (default: every CPU this process may use).
        chat_template: Jinja2 chat template to use instead of the GGUF's own.
        name: Model name reported (default: the file name without ``.gguf``).
        n_batch: Prompt tokens evaluated per batch.
        prompt_cache: Reuse the part of the previous prompt that the new one starts with (faster agent
            loops). Off by default: llama.cpp's numbers then depend on what ran before, so the same
            request and seed can give a different reply.
        verbose: Let llama.cpp print its logs to stderr.

    Sampling follows the request: temperature 0 is greedy; ``top_p`` defaults to 1; ``extra_body`` may
    set ``top_k``, ``min_p``, ``repetition_penalty``, ``presence_penalty`` and ``frequency_penalty``
    (other keys are ignored). Unless set, ``top_k`` and ``min_p`` are off, as on vLLM.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_template: str | None = None,
        name: str | None = None,
        n_batch: int = 512,
        prompt_cache: bool = False,
        verbose: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _usable_cpus()
        self.chat_template = chat_template
        self.n_batch = n_batch
        self.prompt_cache = prompt_cache
        self.verbose = verbose
        self._name = name or self.path.name.removesuffix(".gguf")
        self._llama: Llama | None = None
        self._template = ""
        self._bos = self._eos = ""
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    # Loading.

    def _load(self) -> Llama:
        """Load the weights once (call with the lock held)."""
        if self._llama is not None:
            return self._llama
        if not self.path.is_file():
            raise ConfigError(f"no GGUF model at {self.path}; run 'qwenkit models pull' or give a .gguf path")
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise ConfigError(
                "the embedded backend needs llama-cpp-python: run scripts/install_llama_cpp.sh "
                "(or pip install 'qwenkit[local]'); 'qwenkit doctor' checks the build"
            ) from err
        try:
            llm = Llama(
                model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                n_threads_batch=self.n_threads, n_batch=self.n_batch, verbose=self.verbose,
            )
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"llama.cpp could not load {self.path}: {err}") from err
        template = self.chat_template or llm.metadata.get("tokenizer.chat_template", "")
        if not template:
            raise ConfigError(f"{self.path} has no chat template; pass chat_template=")
        self._template = template
        self._bos = _token_text(llm, llm.token_bos())
        self._eos = _token_text(llm, llm.token_eos())
        self._llama = llm
        return llm

    def load(self) -> None:
        """Load the weights now rather than on the first request."""
        with self._lock:
            self._load()

    def close(self) -> None:
        """Free the weights and the context; the next request loads them again."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    # Requests.

    def render(self, request: ChatRequest) -> str:
        """The prompt text ``request`` becomes (the weights are loaded to read the template)."""
        with self._lock:
            self._load()
            return self._prompt(request)

    def _prompt(self, request: ChatRequest) -> str:
        tools = request.tools if request.tools else None
        prompt = render_chat(
            self._template, template_messages(request.messages), tools=tools,
            continue_final=request.continue_final, bos_token=self._bos, eos_token=self._eos,
        )
        return prompt + (forced_call_prefix(request.tool_choice) if tools else "")

    def _job(self, request: ChatRequest) -> _Job:
        s = request.sampling
        tools = bool(request.tools)
        forced = forced_call_prefix(request.tool_choice) if tools else ""
        options = {"top_k": 0.0, "min_p": 0.0}
        for key, value in s.extra_body.items():
            if key in _SAMPLER_OPTIONS and isinstance(value, int | float):
                options[_SAMPLER_OPTIONS[key]] = float(value)
        return _Job(
            prompt=self._prompt(request),
            forced=forced,
            grammar=tool_call_grammar(request.tools or [], request.tool_choice or "") if forced else None,
            parse_tools=tools and request.tool_choice != "none",
            stop=list(request.stop), max_tokens=s.max_tokens, temperature=s.temperature,
            top_p=1.0 if s.top_p is None else s.top_p, seed=s.seed, options=options,
        )

    def _generate(self, request: ChatRequest, emit: Callable[[str], None], cancel: threading.Event) -> Completion:
        """Run one generation (blocking; in a worker thread), calling ``emit`` with each text delta."""
        with self._lock:
            if cancel.is_set():  # the caller gave up while another request held the model
                return Completion(finish_reason="cancelled")
            llm = self._load()
            job = self._job(request)
            if not self.prompt_cache:
                llm.reset()
            try:
                return _run(llm, job, emit, cancel)
            except (ValueError, RuntimeError) as err:  # context overflow, decode failure
                raise ModelError(f"llama.cpp: {err}") from err

    async def complete(self, request: ChatRequest) -> Completion:
        """Return the whole reply. Cancelling the caller stops generation after the current token."""
        cancel = threading.Event()
        worker = asyncio.get_running_loop().run_in_executor(None, self._generate, request, _ignore, cancel)
        try:
            return await asyncio.shield(worker)
        except asyncio.CancelledError:
            cancel.set()
            raise

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas as llama.cpp produces them; the last chunk carries the `Completion`.

        Closing the iterator early stops generation after the current token.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Completion | BaseException] = asyncio.Queue()
        cancel = threading.Event()

        def emit(delta: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, delta)

        def work() -> None:
            result: Completion | BaseException
            try:
                result = self._generate(request, emit, cancel)
            except BaseException as err:  # handed to the consumer, who re-raises it
                result = err
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, result)

        worker = loop.run_in_executor(None, work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Completion):
                    yield StreamChunk(completion=item)
                    return
                yield StreamChunk(delta=item)
        finally:
            cancel.set()
            await asyncio.shield(worker)


def _ignore(_: str) -> None:
    pass


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _token_text(llm: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")


def _run(llm: Llama, job: _Job, emit: Callable[[str], None], cancel: threading.Event) -> Completion:
    """The token loop: sample, decode UTF-8 incrementally, cut at stop words, count tokens."""
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    prompt_tokens = llm.tokenize(job.prompt.encode("utf-8"), add_bos=llm._model.add_bos_token(), special=True)
    room = llm.n_ctx() - len(prompt_tokens)
    if room <= 0:
        raise ModelError(f"the prompt has {len(prompt_tokens)} tokens; the context holds {llm.n_ctx()}")
    budget = room if job.max_tokens is None or job.max_tokens <= 0 else min(job.max_tokens, room)
    llm.set_seed(job.seed if job.seed is not None else random.randrange(2**31))

    stops = StopScanner(job.stop)
    shown = StopScanner([TOOL_CALL_OPEN] if job.parse_tools else [])  # deltas never show call markup
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    finish, count = "length", 0

    def out(text: str) -> None:
        if text:
            pieces.append(text)
            if not job.forced and (delta := shown.push(text)):
                emit(delta)

    if budget > 0:
        for token in llm.generate(
            prompt_tokens, temp=job.temperature, top_p=job.top_p, top_k=int(job.options["top_k"]),
            min_p=job.options["min_p"], repeat_penalty=job.options.get("repeat_penalty", 1.0),
            presence_penalty=job.options.get("presence_penalty", 0.0),
            frequency_penalty=job.options.get("frequency_penalty", 0.0),
            grammar=LlamaGrammar.from_string(job.grammar, verbose=False) if job.grammar else None,
        ):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                finish = "stop"
                break
            count += 1
            out(stops.push(decoder.decode(llm.detokenize([token]))))
            if stops.stop_word is not None:
                finish = "stop"
                break
            if count >= budget:
                break
            if cancel.is_set():
                finish = "cancelled"
                break
    if stops.stop_word is None:
        out(stops.push(decoder.decode(b"", final=True)) + stops.flush())
    if not job.forced and (rest := shown.flush()) and shown.stop_word is None:
        emit(rest)

    text = "".join(pieces)
    calls: tuple[ToolCall, ...] = ()
    if job.parse_tools:
        text, calls = parse_tool_calls(job.forced + text)
        if calls and finish == "stop":
            finish = "tool_calls"
    return Completion(
        text=text, tool_calls=calls, finish_reason=finish, stop_word=stops.stop_word,
        usage=Usage(prompt_tokens=len(prompt_tokens), completion_tokens=count),
    )
