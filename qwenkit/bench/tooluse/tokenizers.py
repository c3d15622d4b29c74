"""Tokenizers for the Tool Input ROUGE-L: Qwen's own (read from a GGUF with llama.cpp) or whitespace.

Qwen's evaluation tokenises with the model's tokenizer and decodes each token's bytes as UTF-8 with
replacement; `GGUFTokenizer` does the same from the vocabulary embedded in a GGUF file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.bench.errors import BadData, MissingData
from qwenkit.errors import ConfigError


@dataclass(frozen=True)
class NamedTokenizer:
    """A tokenizer with the name the report states.

    Attributes:
        name: What it is (``gguf:<file>`` or ``whitespace``).
        tokenize: Text to token strings.
    """

    name: str
    tokenize: Callable[[str], list[str]]


class GGUFTokenizer:
    """The tokenizer embedded in a GGUF file, loaded without weights (``vocab_only``).

    Args:
        path: The GGUF file.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError("reading a GGUF tokenizer needs llama-cpp-python: pip install 'qwenkit[local]'") from exc
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingData(f"tokenizer file {self.path} does not exist.")
        try:
            self._llm: Any = Llama(model_path=str(self.path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:  # llama.cpp's answer to a file that is not a GGUF
            raise BadData(f"cannot read a tokenizer from {self.path}: it is not a GGUF model file.") from exc

    def __call__(self, text: str) -> list[str]:
        if not text:
            return []
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return [self._llm.detokenize([i]).decode("utf-8", errors="replace") for i in ids]


def whitespace() -> NamedTokenizer:
    """Split on whitespace (not Qwen's tokenizer: numbers are then not comparable with Qwen's)."""
    return NamedTokenizer("whitespace", str.split)


def resolve_tokenizer(spec: str) -> tuple[NamedTokenizer, str | None]:
    """Build the tokenizer ``spec`` names, and a warning when it is not the model's own.

    Args:
        spec: ``gguf:PATH``; ``store`` or ``store:NAME`` (a GGUF pulled with ``qwenkit models pull``);
            ``whitespace``; or ``auto`` (the store's default model if pulled, else whitespace).

    Raises:
        ConfigError: The spec is unknown.
        MissingData: Its file is missing.
        BadData: Its file is not a GGUF model file.
    """
    if spec == "whitespace":
        return whitespace(), "ROUGE-L tokenised by whitespace, not by Qwen's tokenizer."
    if spec.startswith("gguf:"):
        path = Path(spec[5:]).expanduser()
        return NamedTokenizer(f"gguf:{path.name}", GGUFTokenizer(path)), None
    if spec == "auto" or spec == "store" or spec.startswith("store:"):
        from qwenkit.llm.store import DEFAULT_MODEL, ModelStore

        name = spec[6:] if spec.startswith("store:") else DEFAULT_MODEL
        store = ModelStore(progress=False)
        if spec == "auto" and not store.is_pulled(name):
            return whitespace(), (f"ROUGE-L tokenised by whitespace: no Qwen GGUF pulled ('qwenkit models pull "
                                  f"{name}', or a gguf:PATH tokenizer, gives Qwen's tokenizer).")
        path = store.path(name)
        return NamedTokenizer(f"gguf:{path.name}", GGUFTokenizer(path)), None
    raise ConfigError(f"unknown tokenizer {spec!r}; use auto, store[:NAME], gguf:PATH or whitespace.")
