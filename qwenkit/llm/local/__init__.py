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

The package's private parts, one job each: ``_template`` (chat templates), ``_hermes`` (the hermes
tool-call emulation), ``_bridge`` (the thread/async bridge), ``_generate`` (the token loop) and
``_model`` (`LocalModel` itself). Stop words are cut by `qwenkit.llm.stops`.

Example:
    >>> from qwenkit.llm.store import ModelStore
    >>> model = LocalModel(ModelStore().ensure())
    >>> Agent(model, tools=[add], format="nous").run("What is 2+3?")
"""

from __future__ import annotations

from qwenkit.llm.local._model import LocalModel

__all__ = ["LocalModel"]
