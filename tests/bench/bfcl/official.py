"""The official bfcl-eval checkers, imported from the fetched wheel for differential tests.

``ast_checker`` imports ``constants.model_config``, which pulls in every model handler and their SDKs; it
only uses ``MODEL_CONFIG_MAPPING[...].underscore_to_dot`` (to rename dotted functions for some APIs), so
the tests put a stand-in for that one module in ``sys.modules`` (False for every model: names kept as they
are, as qwenkit sends them) before importing the checker. Nothing else is replaced.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from qwenkit.bench.bfcl.package import load


class _Config:
    underscore_to_dot = False


class _Mapping(dict[str, Any]):
    def __getitem__(self, key: str) -> Any:
        return _Config()


def official_ast(data_dir: Path) -> tuple[Any, Any]:
    """``(ast_checker, Language)`` from the wheel in ``data_dir``."""
    load(data_dir, "constants.enums")  # puts the package on the path (version checked)
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules:
        stand_in = types.ModuleType(name)
        stand_in.MODEL_CONFIG_MAPPING = _Mapping()  # type: ignore[attr-defined]
        sys.modules[name] = stand_in
    checker = load(data_dir, "eval_checker.ast_eval.ast_checker")
    enums = load(data_dir, "constants.enums")
    return checker.ast_checker, enums.Language


def official_language(language: Any, category: str) -> Any:
    if category.endswith("_java"):
        return language.JAVA
    if category.endswith("_javascript"):
        return language.JAVASCRIPT
    return language.PYTHON
