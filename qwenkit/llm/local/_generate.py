"""The token loop: sample with llama.cpp, decode UTF-8 incrementally, cut at stop words, count tokens."""

from __future__ import annotations

import codecs
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qwenkit.errors import ModelError
from qwenkit.llm.formats.nous import CALL_OPEN
from qwenkit.llm.local._hermes import parse_tool_calls
from qwenkit.llm.stops import StopScanner
from qwenkit.types import Completion, ToolCall, Usage

if TYPE_CHECKING:
    from llama_cpp import Llama

_SAMPLER_OPTIONS = {"repetition_penalty": "repeat_penalty", "repeat_penalty": "repeat_penalty",
                    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
                    "top_k": "top_k", "min_p": "min_p"}
"""``extra_body`` keys (vLLM's names and llama.cpp's) and the llama.cpp sampler setting each one sets."""


@dataclass(frozen=True)
class Job:
    """One generation: the prompt and how to sample, decided before the worker thread starts.

    Attributes:
        prompt: The whole prompt text.
        forced: Text the prompt ends with that opens a forced tool call (``""`` when none).
        grammar: GBNF constraining the reply (with ``forced`` only).
        parse_tools: Read ``<tool_call>`` blocks out of the reply (native format with tools).
        stop: Stop words.
        max_tokens: Cap on generated tokens (``None`` or <= 0: up to the context's end).
        temperature: Softmax temperature; 0 is greedy.
        top_p: Nucleus sampling mass.
        seed: Sampler seed (``None``: a random one).
        options: llama.cpp sampler settings (``top_k``, ``min_p``, penalties).
    """

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


def sampler_options(extra_body: Mapping[str, Any]) -> dict[str, float]:
    """llama.cpp sampler settings from a request's ``extra_body``; ``top_k``/``min_p`` off unless set, as vLLM."""
    options = {"top_k": 0.0, "min_p": 0.0}
    for key, value in extra_body.items():
        if key in _SAMPLER_OPTIONS and isinstance(value, int | float):
            options[_SAMPLER_OPTIONS[key]] = float(value)
    return options


def generate(llm: Llama, job: Job, emit: Callable[[str], None], cancel: threading.Event) -> Completion:
    """Run ``job`` on ``llm`` (blocking), calling ``emit`` with each text delta that is safe to show.

    Raises:
        ModelError: The prompt does not fit in the context.
    """
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    vocab = _vocab(llm)
    prompt_tokens = llm.tokenize(
        job.prompt.encode("utf-8"), add_bos=llama_cpp.llama_vocab_get_add_bos(vocab), special=True
    )
    room = llm.n_ctx() - len(prompt_tokens)
    if room <= 0:
        raise ModelError(f"the prompt has {len(prompt_tokens)} tokens; the context holds {llm.n_ctx()}")
    budget = room if job.max_tokens is None or job.max_tokens <= 0 else min(job.max_tokens, room)
    llm.set_seed(job.seed if job.seed is not None else random.randrange(2**31))

    stops = StopScanner(job.stop)
    shown = StopScanner([CALL_OPEN] if job.parse_tools else [])  # deltas never show call markup
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
            if llama_cpp.llama_vocab_is_eog(vocab, token):
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


def token_text(llm: Llama, token: int) -> str:
    """The text of a special token such as BOS or EOS (``""`` for a model without one)."""
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")


def _vocab(llm: Llama) -> Any:
    """The llama.cpp vocabulary handle of a loaded model.

    `Llama` offers no method for "is this an end-of-generation token" (Qwen has several: ``<|im_end|>``,
    ``<|endoftext|>``) nor for "does this model add BOS", so both are asked of llama.cpp's C API, which
    needs the vocabulary; it is reached from the public `Llama.model` handle, not llama-cpp-python's
    private ``_model``.
    """
    import llama_cpp

    return llama_cpp.llama_model_get_vocab(llm.model)
