"""BFCL data: where it lives, how to read it, and `fetch` from the official ``bfcl-eval`` wheel on PyPI.

The question files ``BFCL_v4_<category>.json`` and ``possible_answer/BFCL_v4_<category>.json`` are JSON
Lines despite their suffix. Lookup order for the folder: ``--data-dir``, then ``$QWENKIT_BFCL_DIR``, then the
cache that ``qwenkit bench fetch bfcl`` fills (``$XDG_CACHE_HOME/qwenkit/bench/bfcl/<version>``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qwenkit.bench.bfcl.categories import MEMORY_RUNNABLE, MULTI_TURN, SINGLE_TURN, valid_names
from qwenkit.bench.datafile import MAX_DATA_BYTES, first_problem, parse_jsonl, read_data_file, short
from qwenkit.bench.errors import BadData, MissingData, OutputUnusable
from qwenkit.errors import BenchError, ConfigError

BFCL_PACKAGE = "bfcl-eval"
BFCL_VERSION = "2026.3.23"
PREFIX = "BFCL_v4"
CATEGORIES: tuple[str, ...] = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
"""The Python AST categories (and irrelevance): the default run, and what every usable wheel must hold."""
SINGLE_TURN_CATEGORIES: tuple[str, ...] = SINGLE_TURN
"""Every single-turn category, in report order (the multi-turn ones are read by `qwenkit.bench.bfcl.multiturn`)."""
NO_ANSWER = frozenset({"irrelevance", "live_irrelevance", "live_relevance"})
"""Categories judged on whether a call was made at all; they have no answer file."""
PACKAGE_DIR = "package"
"""Sub-folder of the data folder holding the wheel's ``bfcl_eval`` package (API classes, checkers)."""
ENV_DIR = "QWENKIT_BFCL_DIR"


@dataclass(frozen=True)
class BfclItem:
    """One BFCL question with its functions and acceptable answers.

    Attributes:
        id: BFCL id, e.g. ``simple_python_0``.
        category: Category name.
        messages: The (single) turn's messages, ``[{"role", "content"}, ...]``.
        functions: BFCL function docs (``name``, ``description``, ``parameters``).
        ground_truth: ``[{func_name: {param: [acceptable values]}}]``; ``None`` for irrelevance.
    """

    id: str
    category: str
    messages: list[dict[str, str]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, dict[str, list[Any]]]] | None


def cache_dir(version: str = BFCL_VERSION) -> Path:
    """Folder that ``qwenkit bench fetch bfcl`` fills for ``version``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qwenkit" / "bench" / "bfcl" / version


def question_file(data_dir: Path, category: str) -> Path:
    return data_dir / f"{PREFIX}_{category}.json"


def answer_file(data_dir: Path, category: str) -> Path:
    return data_dir / "possible_answer" / f"{PREFIX}_{category}.json"


def check_categories(categories: Sequence[str]) -> list[str]:
    """Validate category names (order kept, duplicates dropped).

    Raises:
        ConfigError: A name is not a supported category.
    """
    out: list[str] = []
    for c in categories:
        c = c.strip()
        if c not in SINGLE_TURN and c not in MULTI_TURN and c not in MEMORY_RUNNABLE:
            raise ConfigError(f"unknown BFCL category {c[:80]!r}; valid {valid_names()}.")
        if c not in out:
            out.append(c)
    if not out:
        raise ConfigError(f"no BFCL category given; valid {valid_names()}.")
    return out


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """Pick the data folder: the argument, else ``$QWENKIT_BFCL_DIR``, else the fetch cache.

    Raises:
        MissingData: The folder does not exist.
    """
    if data_dir is not None:
        path, origin = Path(data_dir), "the given data folder"
    elif os.environ.get(ENV_DIR):
        path, origin = Path(os.environ[ENV_DIR]), f"${ENV_DIR}"
    else:
        path, origin = cache_dir(), "the download cache"
    if not path.is_dir():
        raise MissingData(f"no BFCL data at {path} ({origin}).")
    return path


# ------------------------------------------------------------------------------ reading, untrusted

class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _Turn(_Strict):
    role: str
    content: str


class _Property(_Strict):
    type: str | None = None
    items: dict[str, Any] | None = None


class _Parameters(_Strict):
    type: str | None = None
    properties: dict[str, _Property] = {}
    required: list[str] = []


class _Function(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: _Parameters


class _Question(_Strict):
    id: str = Field(min_length=1)
    question: list[Annotated[list[_Turn], Field(min_length=1)]] = Field(min_length=1)
    function: list[_Function] = Field(default_factory=list)  # live_irrelevance has records without functions


class _Answer(_Strict):
    id: str = Field(min_length=1)
    ground_truth: list[dict[str, dict[str, list[Any]]]] = Field(min_length=1)


def parse_category(
    category: str, questions: bytes, answers: bytes | None, *,
    question_source: str = "question file", answer_source: str = "answer file",
) -> list[BfclItem]:
    """Parse one category's question file and (except irrelevance) answer file, joined by id.

    Args:
        category: The category (decides whether answers are needed).
        questions: Bytes of ``BFCL_v4_<category>.json``.
        answers: Bytes of ``possible_answer/BFCL_v4_<category>.json`` (ignored for irrelevance).
        question_source: How to name the question file in errors.
        answer_source: How to name the answer file in errors.

    Raises:
        BadData: A line is malformed or of the wrong shape, an id repeats, or a question has no answer.
    """
    gold: dict[str, Any] = {}
    if category not in NO_ANSWER:
        if answers is None:
            raise BadData(f"{category} needs an answer file.")
        for n, obj in parse_jsonl(answers, answer_source):
            try:
                answer = _Answer.model_validate(obj)
            except ValidationError as exc:
                raise BadData(f"{answer_source} line {n} is not a BFCL answer ({first_problem(exc)}).") from exc
            if answer.id in gold:
                raise BadData(f"{answer_source} has two answers for {short(answer.id)!r}.")
            gold[answer.id] = obj["ground_truth"]
    items: list[BfclItem] = []
    seen: set[str] = set()
    for n, obj in parse_jsonl(questions, question_source):
        try:
            q = _Question.model_validate(obj)
        except ValidationError as exc:
            raise BadData(f"{question_source} line {n} is not a BFCL question ({first_problem(exc)}).") from exc
        if q.id in seen:
            raise BadData(f"{question_source} has two questions with id {short(q.id)!r}.")
        seen.add(q.id)
        if category not in NO_ANSWER and q.id not in gold:
            raise BadData(f"{question_source}: question {short(q.id)!r} has no possible answer in {answer_source}.")
        items.append(BfclItem(
            id=q.id, category=category, messages=list(obj["question"][0]),
            functions=list(obj.get("function") or []),
            ground_truth=gold.get(q.id),
        ))
    return items


def load_category(data_dir: Path, category: str) -> list[BfclItem]:
    """Read one category's questions and (except irrelevance) its possible answers, joined by id.

    Raises:
        MissingData: A file is missing.
        BadData: A file is malformed, or an answer is missing for a question.
    """
    qpath = question_file(data_dir, category)
    apath = answer_file(data_dir, category)
    questions = read_data_file(qpath, "BFCL data file")
    answers = None if category in NO_ANSWER else read_data_file(apath, "BFCL answer file")
    return parse_category(category, questions, answers, question_source=str(qpath), answer_source=str(apath))


def fingerprint(data_dir: Path, categories: Sequence[str]) -> str:
    """Short hash of the data files of ``categories`` (part of the run configuration)."""
    h = hashlib.sha256()
    for c in categories:
        files = [question_file(data_dir, c), answer_file(data_dir, c)]
        if c in MEMORY_RUNNABLE:  # read from the package: questions, answers, prerequisite conversations
            package = data_dir / PACKAGE_DIR / "bfcl_eval" / "data"
            files = [package / f"{PREFIX}_memory.json", package / "possible_answer" / f"{PREFIX}_memory.json",
                     *sorted((package / "memory_prereq_conversation").glob("memory_*.json"))]
        for p in files:
            if p.is_file():
                h.update(p.name.encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _pip_download(dest: Path, version: str) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "-d", str(dest), f"{BFCL_PACKAGE}=={version}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"could not run pip to download {BFCL_PACKAGE}=={version}: {exc}") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"pip could not download {BFCL_PACKAGE}=={version} from PyPI: {last}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise BenchError(f"pip downloaded no wheel for {BFCL_PACKAGE}=={version}.")
    return wheels[0]


def extract_data(wheel: Path, dest: Path) -> list[Path]:
    """Copy ``bfcl_eval/data/`` question and answer files of the supported categories out of a wheel.

    Raises:
        MissingData: ``wheel`` does not exist.
        BadData: It is not a readable zip file, lacks a data file, or a data file is too large.
        OutputUnusable: ``dest`` cannot be written.
    """
    def files(categories: Sequence[str]) -> dict[str, Path]:
        out = {f"bfcl_eval/data/{PREFIX}_{c}.json": Path(f"{PREFIX}_{c}.json") for c in categories}
        out |= {f"bfcl_eval/data/possible_answer/{PREFIX}_{c}.json": Path("possible_answer", f"{PREFIX}_{c}.json")
                for c in categories if c not in NO_ANSWER}
        return out

    wanted = files(CATEGORIES)
    # The other categories and the package are taken when present; running a category whose files are
    # missing then says so (a wheel that lacks the Python categories is not a BFCL wheel at all).
    optional = files([c for c in SINGLE_TURN + MULTI_TURN if c not in CATEGORIES])
    if not wheel.is_file():
        raise MissingData(f"the wheel {wheel} does not exist." if not wheel.exists() else f"{wheel} is not a file.")
    written = []
    try:
        with zipfile.ZipFile(wheel) as z:
            infos = {info.filename: info for info in z.infolist()}
            # The package itself (simulated API classes, function docs, checkers) goes under PACKAGE_DIR,
            # with its METADATA, so that the version of what is loaded can be checked.
            wanted |= {name: rel for name, rel in optional.items() if name in infos}
            for name in infos:
                if any(part in ("", ".", "..") for part in name.rstrip("/").split("/")) or "\\" in name:
                    continue  # never write outside dest, whatever the wheel names
                if (name.startswith("bfcl_eval/") and not name.endswith("/")
                        and not name.startswith("bfcl_eval/data/unused_datasets/")) or (
                        name.endswith(".dist-info/METADATA") and name.startswith("bfcl_eval-")):
                    wanted.setdefault(name, Path(PACKAGE_DIR, *name.split("/")))
            missing = sorted(set(wanted) - set(infos))
            if missing:
                raise BadData(f"{wheel.name} lacks {', '.join(missing)}; is it the right bfcl-eval version?")
            for member, rel in wanted.items():
                if infos[member].file_size > MAX_DATA_BYTES:
                    raise BadData(f"{wheel.name}: {member} is {infos[member].file_size} bytes, more than a BFCL "
                                  f"data file can be ({MAX_DATA_BYTES}).")
                target = dest / rel
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(member) as src, target.open("wb") as out:
                        # Bounded copy: the size in the zip directory is the wheel's claim, not a fact.
                        shutil.copyfileobj(_Capped(src, MAX_DATA_BYTES, f"{wheel.name}: {member}"), out)
                except OSError as exc:
                    raise OutputUnusable(f"cannot write {target}: {exc.strerror or exc}.") from exc
                written.append(target)
    # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method.
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise BadData(f"{wheel} is not a readable wheel (zip) file: {exc}") from exc
    except OSError as exc:
        raise BadData(f"cannot read {wheel}: {exc.strerror or exc}.") from exc
    return written


class _Capped:
    """A read-only stream that raises `BadData` once more than ``limit`` bytes were read."""

    def __init__(self, stream: Any, limit: int, what: str) -> None:
        self.stream, self.limit, self.what, self.seen = stream, limit, what, 0

    def read(self, n: int = -1) -> bytes:
        chunk: bytes = self.stream.read(n if n >= 0 else self.limit + 1)
        self.seen += len(chunk)
        if self.seen > self.limit:
            raise BadData(f"{self.what} holds more than {self.limit} bytes.")
        return chunk


def fetch(dest: Path | None = None, version: str = BFCL_VERSION, *, wheel: Path | None = None) -> Path:
    """Download the ``bfcl-eval`` wheel with ``pip download --no-deps`` and extract its data into ``dest``.

    Args:
        dest: Target folder (default: `cache_dir`).
        version: ``bfcl-eval`` version.
        wheel: Use this wheel file instead of downloading.

    Returns:
        The folder holding the data.

    Raises:
        MissingData: ``wheel`` does not exist.
        BadData: The wheel is not a zip file or lacks the data files.
        OutputUnusable: ``dest`` cannot be written.
        BenchError: pip failed (offline, unknown version).
    """
    dest = dest or cache_dir(version)
    with tempfile.TemporaryDirectory(prefix="qwenkit-bfcl-") as tmp:
        staging = Path(tmp, "data")
        extract_data(wheel or _pip_download(Path(tmp), version), staging)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(staging, dest)
        except OSError as exc:
            raise OutputUnusable(f"cannot write the BFCL data to {dest}: {exc.strerror or exc}.") from exc
    return dest
