"""Load modules of the official ``bfcl-eval`` package that ``qwenkit bench fetch bfcl`` extracted.

Only the parts that import without BFCL's model handlers are used: the simulated API classes
(``func_source_code``), the multi-turn checker, the Java/JavaScript type converters. The package is put on
``sys.path`` when first needed (never at import time) from ``<data dir>/package``, after its METADATA says
it is exactly `BFCL_VERSION`: scores must come from the version the data came from.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from pathlib import Path
from types import ModuleType

from qwenkit.bench.bfcl.data import BFCL_PACKAGE, BFCL_VERSION, PACKAGE_DIR
from qwenkit.bench.errors import MissingData

FETCH_HINT = "run 'qwenkit bench fetch bfcl' (it downloads the wheel from PyPI) and use its folder."
_lock = threading.Lock()


def package_root(data_dir: Path) -> Path:
    """Check ``data_dir`` holds the bfcl-eval package of the right version and return its root.

    Raises:
        MissingData: The package is missing or of another version (the message says how to fetch it).
    """
    root = Path(data_dir) / PACKAGE_DIR
    metas = sorted(root.glob("bfcl_eval-*.dist-info/METADATA"))
    meta = metas[0] if len(metas) == 1 else root / "(no single METADATA)"
    if not (root / "bfcl_eval" / "__init__.py").is_file():
        raise MissingData(f"no {BFCL_PACKAGE} package in {data_dir}: {FETCH_HINT}")
    version = None
    if meta.is_file():
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Version:"):
                version = line.split(":", 1)[1].strip()
                break
    if version != BFCL_VERSION:
        found = version or "unknown"
        raise MissingData(f"the {BFCL_PACKAGE} package in {data_dir} is version {found}, not {BFCL_VERSION}: "
                          f"{FETCH_HINT}")
    return root


@functools.lru_cache(maxsize=16)
def _checked_root(data_dir: str) -> Path:
    """`package_root`, resolved, once per folder (it reads METADATA; `load` runs for every API session)."""
    return package_root(Path(data_dir)).resolve()


@functools.lru_cache(maxsize=16)
def _origin(init_file: str) -> Path:
    return Path(init_file).resolve().parent.parent


def load(data_dir: Path, module: str) -> ModuleType:
    """Import ``bfcl_eval.<module>`` from the package in ``data_dir``.

    Raises:
        MissingData: The package is missing, of another version, or another ``bfcl_eval`` is already
            imported from elsewhere.
    """
    root = _checked_root(str(data_dir))
    with _lock:
        loaded = sys.modules.get("bfcl_eval")
        if loaded is not None:
            origin = _origin(getattr(loaded, "__file__", "") or "")
            if origin != root:
                raise MissingData(f"another bfcl_eval package is already imported (from {origin}); "
                                  f"qwenkit needs the one in {root}.")
        elif str(root) not in sys.path:
            sys.path.insert(0, str(root))
        try:
            return importlib.import_module(f"bfcl_eval.{module}")
        except ImportError as exc:
            missing = f" (pip install {exc.name})" if exc.name and not exc.name.startswith("bfcl_eval") else ""
            raise MissingData(f"cannot import bfcl_eval.{module} from {root}: {exc}{missing}.") from exc
