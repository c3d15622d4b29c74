"""A GGUF's tokenizer and metadata without its weights (llama.cpp's vocab-only mode).

`Agent(format="auto")` asks the model for its chat template and context length before the first
request, and for token counts before each one; loading hundreds of MiB of weights for that would make
every run pay for a load it may not need yet. llama.cpp can open a GGUF for its vocabulary alone: the
metadata (chat template, context length) and the tokenizer, in about a second and a few MiB. No
llama.cpp context is made (it is not needed to tokenize, and would warn about a context it cannot size).
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

from qwenkit.errors import ConfigError, ModelError

MAX_META_BYTES = 4 << 20
"""The largest metadata string read (a chat template is a few KiB; the file is untrusted input)."""


class GgufVocab:
    """An open GGUF in vocab-only mode: metadata and tokenizer, no weights. Not thread-safe; `close` frees it.

    Args:
        path: The GGUF file.
        verbose: Let llama.cpp print its logs to stderr.

    Raises:
        ConfigError: llama-cpp-python is missing.
        ModelError: llama.cpp cannot read the file.
    """

    def __init__(self, path: Path, *, verbose: bool = False) -> None:
        try:
            import llama_cpp
        except ImportError as err:
            raise ConfigError(
                "the embedded backend needs llama-cpp-python: run scripts/install_llama_cpp.sh "
                "(or pip install 'qwenkit[local]'); 'qwenkit doctor' checks the build"
            ) from err
        # The ctypes bindings' hints do not match what ctypes accepts (buffers for ``bytes``): typed as Any.
        self._api: Any = llama_cpp
        # llama-cpp-python prints llama.cpp's logs through this logger (`Llama(verbose=...)` sets its level on
        # each load too). Quiet means quiet: the vocab loader reports harmless token-type fixes as errors,
        # and a real failure is raised below anyway.
        logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
        params = self._api.llama_model_default_params()
        params.vocab_only = True
        model = self._api.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ModelError(f"llama.cpp could not read {path}")
        self._model: Any = model
        self._vocab: Any = self._api.llama_model_get_vocab(model)
        self.add_bos: bool = bool(self._api.llama_vocab_get_add_bos(self._vocab))

    def meta(self, key: str) -> str | None:
        """A metadata value as text (``None`` when the GGUF has no such key).

        Raises:
            ModelError: The value is larger than `MAX_META_BYTES`.
        """
        probe = ctypes.create_string_buffer(1)
        size = self._api.llama_model_meta_val_str(self._model, key.encode(), probe, 1)
        if size < 0:
            return None
        if size > MAX_META_BYTES:
            raise ModelError(f"the GGUF's {key} is {size} bytes long; refusing to read it")
        buf = ctypes.create_string_buffer(size + 1)
        self._api.llama_model_meta_val_str(self._model, key.encode(), buf, size + 1)
        return buf.raw[:size].decode("utf-8", errors="replace")

    def context_length(self) -> int | None:
        """The context length the model was trained for (``<arch>.context_length``), when the GGUF says."""
        arch = self.meta("general.architecture")
        value = self.meta(f"{arch}.context_length") if arch else None
        return int(value) if value is not None and value.isdigit() else None

    def special_text(self, which: str) -> str:
        """The text of the ``"bos"`` or ``"eos"`` token (``""`` for a model without one)."""
        token = self._api.llama_vocab_bos(self._vocab) if which == "bos" else self._api.llama_vocab_eos(self._vocab)
        if token < 0:
            return ""
        buf = ctypes.create_string_buffer(256)
        n = self._api.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

    def count(self, text: str) -> int:
        """How many tokens ``text`` is as a prompt (special tokens parsed, BOS added as the model adds it)."""
        data = text.encode("utf-8")
        room = len(data) + 8  # a token is at least one byte, plus BOS
        tokens = (self._api.llama_token * room)()
        n = self._api.llama_tokenize(self._vocab, data, len(data), tokens, room, self.add_bos, True)
        if n < 0:  # llama.cpp says how many it needs
            room = -n
            tokens = (self._api.llama_token * room)()
            n = self._api.llama_tokenize(self._vocab, data, len(data), tokens, room, self.add_bos, True)
        if n < 0:
            raise ModelError("llama.cpp could not tokenize the prompt")
        return n

    def close(self) -> None:
        """Free the vocabulary. Idempotent."""
        if self._model is not None:
            self._api.llama_model_free(self._model)
            self._model = None
