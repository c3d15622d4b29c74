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

`LocalModel.template_info` (the template in use, the context length, whether it has Qwen3's thinking
switch) and `LocalModel.count_tokens` read the GGUF's metadata and tokenizer without loading the weights,
so ``format="auto"`` and the context budget cost about a second, not a model load. ``ChatRequest.thinking``
reaches the template as ``enable_thinking``.

The package's private parts, one job each: ``_hermes`` (the hermes tool-call emulation), ``_bridge``
(the thread/async bridge), ``_generate`` (the token loop), ``_vocab`` (the weightless tokenizer and
metadata) and ``_model`` (`LocalModel` itself). Chat templates are rendered by `qwenkit.llm.chat_template`;
stop words are cut by `qwenkit.llm.stops`.

Example:
    >>> from qwenkit.llm.store import ModelStore
    >>> model = LocalModel(ModelStore().ensure())
    >>> Agent(model, tools=[add], format="nous").run("What is 2+3?")
"""

from __future__ import annotations

from qwenkit.llm.local._model import LocalModel

__all__ = ["LocalModel"]
