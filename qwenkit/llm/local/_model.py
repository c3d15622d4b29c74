"""`LocalModel`: loading the GGUF, turning a request into a `Job`, and the `ChatModel` methods."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenkit.errors import ConfigError, ModelError
from qwenkit.llm.base import ChatRequest, StreamChunk
from qwenkit.llm.chat_template import (
    THINKING_SWITCH,
    check_template,
    load_template_file,
    render_chat,
    template_has_thinking,
    template_messages,
)
from qwenkit.llm.local._bridge import complete_in_thread, stream_from_thread
from qwenkit.llm.local._generate import Job, generate, sampler_options, token_text
from qwenkit.llm.local._hermes import forced_call_prefix, tool_call_grammar
from qwenkit.llm.local._vocab import GgufVocab
from qwenkit.llm.template_info import TemplateInfo
from qwenkit.types import Completion

if TYPE_CHECKING:
    from llama_cpp import Llama


class LocalModel:
    """A `ChatModel` that runs a GGUF file in-process with llama.cpp.

    Args:
        path: The GGUF file (see ``qwenkit models pull``).
        n_ctx: Context length in tokens.
        n_threads: CPU threads (default: every CPU this process may use).
        chat_template: A chat template to use instead of the GGUF's own: a `pathlib.Path` (or other
            path object) names a file (a ``.jinja`` file, a ``tokenizer_config.json``, or a model folder
            holding either), a ``str`` is the Jinja2 text itself. Either is checked here: a template that
            does not parse is a `ConfigError` naming the file.
        name: Model name reported (default: the file name without ``.gguf``).
        n_batch: Prompt tokens evaluated per batch.
        prompt_cache: Reuse the part of the previous prompt that the new one starts with (faster agent
            loops). Off by default: llama.cpp's numbers then depend on what ran before, so the same
            request and seed can give a different reply.
        verbose: Let llama.cpp print its logs to stderr.

    Sampling follows the request: temperature 0 is greedy; ``top_p`` defaults to 1; ``extra_body`` may
    set ``top_k``, ``min_p``, ``repetition_penalty``, ``presence_penalty`` and ``frequency_penalty``
    (other keys are ignored). Unless set, ``top_k`` and ``min_p`` are off, as on vLLM.

    The weights load on first use (or `load`) and are freed by `close` / `aclose`; a request after
    that loads them again. `template_info` and `count_tokens` read the GGUF's metadata and tokenizer
    without loading the weights.

    Raises:
        ConfigError: ``chat_template`` cannot be read or does not parse.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_template: str | os.PathLike[str] | None = None,
        name: str | None = None,
        n_batch: int = 512,
        prompt_cache: bool = False,
        verbose: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _usable_cpus()
        if isinstance(chat_template, str):
            self.chat_template: str | None = check_template(chat_template, "the chat_template argument")
            self._template_source = "the chat template given to LocalModel"
        elif chat_template is not None:
            self.chat_template = load_template_file(chat_template)
            self._template_source = f"the chat template file {Path(chat_template).expanduser()}"
        else:
            self.chat_template = None
            self._template_source = f"the GGUF's chat template ({self.path.name})"
        self.n_batch = n_batch
        self.prompt_cache = prompt_cache
        self.verbose = verbose
        self._name = name or self.path.name.removesuffix(".gguf")
        self._llama: Llama | None = None
        self._template = ""
        self._bos = self._eos = ""
        # llama.cpp blocks, and one context is not thread-safe: every use of the model holds this lock.
        self._lock = threading.Lock()
        # The weightless tokenizer (template_info, count_tokens) has its own lock, so counting never
        # waits for a generation.
        self._vocab: GgufVocab | None = None
        self._vocab_lock = threading.Lock()
        self._info: TemplateInfo | None = None

    @property
    def name(self) -> str:
        """The model name used in reports (the file name without ``.gguf`` unless given)."""
        return self._name

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._llama is not None

    # Loading and freeing.

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
        try:
            self._template = self._chosen_template(llm.metadata.get("tokenizer.chat_template"))
        except ConfigError:
            llm.close()
            raise
        self._bos = token_text(llm, llm.token_bos())
        self._eos = token_text(llm, llm.token_eos())
        self._llama = llm
        return llm

    def load(self) -> None:
        """Load the weights now rather than on the first request."""
        with self._lock:
            self._load()

    def _chosen_template(self, gguf_template: str | None) -> str:
        """The template in use: the one given, else the GGUF's own (checked, so a broken one is named)."""
        if self.chat_template is not None:
            return self.chat_template
        if not gguf_template:
            raise ConfigError(f"{self.path} has no chat template; give one (chat_template=)")
        return check_template(gguf_template, f"the chat template in {self.path}")

    def close(self) -> None:
        """Free the weights, the context and the tokenizer (blocking; waits for a running generation).

        Idempotent.
        """
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
        with self._vocab_lock:
            if self._vocab is not None:
                self._vocab.close()
                self._vocab = None

    async def aclose(self) -> None:
        """Free the weights and the context without blocking the event loop. Idempotent.

        A generation in progress finishes first (it holds the model); the next request loads the
        weights again.
        """
        # In a thread: `close` waits for the lock, which a running generation or load holds.
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # Requests.

    def render(self, request: ChatRequest) -> str:
        """The prompt text ``request`` becomes (the weights are loaded to read the template)."""
        with self._lock:
            self._load()
            return self._prompt(request)

    def _prompt(self, request: ChatRequest) -> str:
        tools = request.tools if request.tools else None
        # Qwen3's switch, as vLLM passes chat_template_kwargs; unset leaves the template's own default.
        kwargs = {THINKING_SWITCH: request.thinking} if request.thinking is not None else None
        prompt = render_chat(
            self._template, template_messages(request.messages), tools=tools,
            continue_final=request.continue_final, bos_token=self._bos, eos_token=self._eos,
            template_kwargs=kwargs,
        )
        return prompt + (forced_call_prefix(request.tool_choice) if tools else "")

    # What the template and tokenizer show, without the weights.

    def _open_vocab(self) -> GgufVocab:
        """The weightless tokenizer, opened once (call with the vocab lock held)."""
        if self._vocab is None:
            if not self.path.is_file():
                raise ConfigError(f"no GGUF model at {self.path}; run 'qwenkit models pull' or give a .gguf path")
            self._vocab = GgufVocab(self.path, verbose=self.verbose)
        return self._vocab

    def _describe(self) -> TemplateInfo:
        with self._vocab_lock:
            if self._info is None:
                vocab = self._open_vocab()
                template = self._chosen_template(vocab.meta("tokenizer.chat_template"))
                length = self.n_ctx if self.n_ctx > 0 else vocab.context_length()  # 0: llama.cpp's "as trained"
                self._info = TemplateInfo(
                    source=self._template_source, template=template, max_input_tokens=length,
                    thinking=template_has_thinking(template),
                )
            return self._info

    async def template_info(self) -> TemplateInfo:
        """The chat template in use and the context length as loaded (``n_ctx``), read without the weights.

        Raises:
            ConfigError: No GGUF at the path, or its template is missing or does not parse.
            ModelError: llama.cpp cannot read the file.
        """
        return await asyncio.get_running_loop().run_in_executor(None, self._describe)

    def _count(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        template = self._describe().template or ""
        with self._vocab_lock:
            vocab = self._open_vocab()
            prompt = render_chat(template, [_template_message(m) for m in messages], tools=tools or None,
                                 bos_token=vocab.special_text("bos"), eos_token=vocab.special_text("eos"))
            return vocab.count(prompt)

    async def count_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        """Tokens the prompt for ``messages`` (OpenAI-style dicts) and ``tools`` takes, with the model's tokenizer.

        The count is of the whole rendered prompt, the opened assistant turn included, as a request sends it.

        Raises:
            ConfigError: No GGUF at the path, or its template is missing or does not parse.
            ModelError: The template fails on these messages, or llama.cpp cannot read the file.
        """
        return await asyncio.get_running_loop().run_in_executor(None, self._count, messages, tools)

    def _job(self, request: ChatRequest) -> Job:
        s = request.sampling
        tools = bool(request.tools)
        forced = forced_call_prefix(request.tool_choice) if tools else ""
        return Job(
            prompt=self._prompt(request),
            forced=forced,
            grammar=tool_call_grammar(request.tools or [], request.tool_choice or "") if forced else None,
            parse_tools=tools and request.tool_choice != "none",
            stop=list(request.stop), max_tokens=s.max_tokens, temperature=s.temperature,
            top_p=1.0 if s.top_p is None else s.top_p, seed=s.seed, options=sampler_options(s.extra_body),
        )

    def _work(self, request: ChatRequest) -> Callable[[Callable[[str], None], threading.Event], Completion]:
        """The blocking generation of ``request``, for the worker thread."""

        def work(emit: Callable[[str], None], cancel: threading.Event) -> Completion:
            with self._lock:
                if cancel.is_set():  # the caller gave up while another request held the model
                    return Completion(finish_reason="cancelled")
                llm = self._load()
                job = self._job(request)
                if not self.prompt_cache:
                    llm.reset()
                try:
                    return generate(llm, job, emit, cancel)
                except (ValueError, RuntimeError) as err:  # context overflow, decode failure
                    raise ModelError(f"llama.cpp: {err}") from err

        return work

    async def complete(self, request: ChatRequest) -> Completion:
        """Return the whole reply. Cancelling the caller stops generation after the current token."""
        return await complete_in_thread(self._work(request))

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas as llama.cpp produces them; the last chunk carries the `Completion`.

        Closing the iterator early stops generation after the current token.
        """
        # The bridge's own generator is returned, not wrapped: closing it then runs its clean-up at once.
        return stream_from_thread(self._work(request))


def _template_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI-style message as chat templates take it: tool-call arguments as objects, as vLLM passes them."""
    calls = message.get("tool_calls")
    if not isinstance(calls, Sequence) or isinstance(calls, str):
        return dict(message)
    fixed = []
    for call in calls:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("arguments"), str):
            try:
                arguments = json.loads(fn["arguments"])
            except ValueError:
                arguments = fn["arguments"]  # as written: the template shows what the model wrote
            call = {**call, "function": {**fn, "arguments": arguments}}
        fixed.append(call)
    return {**message, "tool_calls": fixed}


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
