"""BFCL data: where it lives, how to read it, and `fetch` from the official ``bfcl-eval`` wheel on PyPI.

The question files ``BFCL_v4_<category>.json`` and ``possible_answer/BFCL_v4_<category>.json`` are JSON
Lines despite their suffix. Lookup order for the folder: ``--data-dir``, then ``$QWENKIT_BFCL_DIR``, then the
cache that ``qwenkit bench fetch bfcl`` fills (``$XDG_CACHE_HOME/qwenkit/bench/bfcl/<version>``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.errors import ConfigError

BFCL_PACKAGE = "bfcl-eval"
BFCL_VERSION = "2026.3.23"
PREFIX = "BFCL_v4"
CATEGORIES: tuple[str, ...] = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
"""The single-turn Python AST categories (and irrelevance) this benchmark supports, in report order."""
NO_ANSWER = frozenset({"irrelevance"})
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
        if c not in CATEGORIES:
            raise ConfigError(f"unknown BFCL category {c!r}; choose from {', '.join(CATEGORIES)}.")
        if c not in out:
            out.append(c)
    if not out:
        raise ConfigError(f"no BFCL category given; choose from {', '.join(CATEGORIES)}.")
    return out


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """Pick the data folder: the argument, else ``$QWENKIT_BFCL_DIR``, else the fetch cache.

    Raises:
        ConfigError: The folder does not exist.
    """
    if data_dir is not None:
        path, origin = Path(data_dir), "--data-dir"
    elif os.environ.get(ENV_DIR):
        path, origin = Path(os.environ[ENV_DIR]), f"${ENV_DIR}"
    else:
        path, origin = cache_dir(), "the cache"
    if not path.is_dir():
        raise ConfigError(f"no BFCL data at {path} ({origin}): run 'qwenkit bench fetch bfcl' or pass "
                          "--data-dir DIR with the BFCL_v4_*.json files.")
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON Lines ({exc.msg} at line {exc.lineno}).") from exc


def load_category(data_dir: Path, category: str) -> list[BfclItem]:
    """Read one category's questions and (except irrelevance) its possible answers, joined by id.

    Raises:
        ConfigError: A file is missing or malformed, or an answer is missing for a question.
    """
    qpath = question_file(data_dir, category)
    if not qpath.is_file():
        raise ConfigError(f"missing BFCL data file {qpath}: run 'qwenkit bench fetch bfcl' or pass --data-dir.")
    answers: dict[str, Any] = {}
    if category not in NO_ANSWER:
        apath = answer_file(data_dir, category)
        if not apath.is_file():
            raise ConfigError(f"missing BFCL answer file {apath}: run 'qwenkit bench fetch bfcl'.")
        answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(apath)}
    items = []
    for q in _read_jsonl(qpath):
        if category not in NO_ANSWER and q["id"] not in answers:
            raise ConfigError(f"{qpath}: question {q['id']} has no possible answer in "
                              f"{answer_file(data_dir, category)}.")
        items.append(BfclItem(
            id=q["id"], category=category, messages=list(q["question"][0]), functions=list(q["function"]),
            ground_truth=answers.get(q["id"]),
        ))
    return items


def fingerprint(data_dir: Path, categories: Sequence[str]) -> str:
    """Short hash of the data files of ``categories`` (part of the run configuration)."""
    h = hashlib.sha256()
    for c in categories:
        for p in (question_file(data_dir, c), answer_file(data_dir, c)):
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
        raise ConfigError(f"could not run pip to download {BFCL_PACKAGE}=={version}: {exc}") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"pip could not download {BFCL_PACKAGE}=={version} from PyPI: {last}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ConfigError(f"pip downloaded no wheel for {BFCL_PACKAGE}=={version}.")
    return wheels[0]


def extract_data(wheel: Path, dest: Path) -> list[Path]:
    """Copy ``bfcl_eval/data/`` question and answer files of the supported categories out of a wheel."""
    wanted = {f"bfcl_eval/data/{PREFIX}_{c}.json": Path(f"{PREFIX}_{c}.json") for c in CATEGORIES}
    wanted |= {f"bfcl_eval/data/possible_answer/{PREFIX}_{c}.json": Path("possible_answer", f"{PREFIX}_{c}.json")
               for c in CATEGORIES if c not in NO_ANSWER}
    written = []
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        missing = sorted(set(wanted) - names)
        if missing:
            raise ConfigError(f"{wheel.name} lacks {', '.join(missing)}; is it the right bfcl-eval version?")
        for member, rel in wanted.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(member))
            written.append(target)
    return written


def fetch(dest: Path | None = None, version: str = BFCL_VERSION, *, wheel: Path | None = None) -> Path:
    """Download the ``bfcl-eval`` wheel with ``pip download --no-deps`` and extract its data into ``dest``.

    Args:
        dest: Target folder (default: `cache_dir`).
        version: ``bfcl-eval`` version.
        wheel: Use this wheel file instead of downloading.

    Returns:
        The folder holding the data.

    Raises:
        ConfigError: pip failed (offline, unknown version) or the wheel lacks the files.
    """
    dest = dest or cache_dir(version)
    with tempfile.TemporaryDirectory(prefix="qwenkit-bfcl-") as tmp:
        staging = Path(tmp, "data")
        extract_data(wheel or _pip_download(Path(tmp), version), staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(staging, dest)
    return dest
