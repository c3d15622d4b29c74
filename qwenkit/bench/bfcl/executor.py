"""Run calls against bfcl-eval's own simulated API classes, by name, as the official harness would.

The official harness writes each call as a string, prefixes method names with a global instance name and
``eval``s it (``multi_turn_utils.execute_multi_turn_func_call``). qwenkit already has each call as a name
and an argument dict, so `ApiSession.execute` looks the name up among the public methods of the entry's
instances (the later class wins a shared name, as in the official mapping) and calls it; results and
errors are written exactly as the official harness writes them:

- a ``str`` result as it is, a ``dict`` as ``json.dumps`` (``str`` if that fails), anything else ``str``;
- any exception as ``Error during execution: <message>``; a name that is no method of the involved classes
  as the ``NameError`` that ``eval`` would raise; BFCL's blocked names (``kill``, ``exit``...) as its own
  refusal.

Model text is never evaluated. Ground-truth calls (strings such as ``cd(folder='x')``) are read with
`parse_call` (``ast``, literals only).
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.bench.bfcl.package import load

BLOCKED = ("kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run")
"""Names the official harness refuses to evaluate."""


def format_result(value: Any) -> str:
    """An execution result as the official harness writes it."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except Exception:
            return str(value)
    return str(value)


def error_text(exc: BaseException) -> str:
    """An exception as the official harness writes it."""
    return f"Error during execution: {exc}"


@dataclass(frozen=True)
class ParsedCall:
    """A call read from a ground-truth string: name, positional and keyword arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = None  # type: ignore[assignment]

    def keywords(self) -> dict[str, Any]:
        return dict(self.kwargs or {})


def parse_call(text: str) -> ParsedCall:
    """Read ``name(a, k=v)`` with literal arguments.

    Raises:
        ValueError: ``text`` is not one call with literal arguments.
    """
    node = ast.parse(text.strip(), mode="eval").body
    if not isinstance(node, ast.Call):
        raise ValueError(f"not a call: {text[:80]!r}")
    func = node.func
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute):
        name = func.attr
    else:
        raise ValueError(f"not a named call: {text[:80]!r}")
    args = tuple(ast.literal_eval(a) for a in node.args)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
    return ParsedCall(name, args, kwargs)


class ApiSession:
    """The instances of one entry's involved classes, loaded from the wheel with the entry's initial config.

    Args:
        data_dir: The fetched BFCL folder (its ``package`` holds bfcl-eval).
        involved_classes: Class names, e.g. ``["GorillaFileSystem", "TwitterAPI"]``.
        initial_config: The entry's ``initial_config`` (deep-copied per class, as the official harness does).
        long_context: Load the scenarios' long-context variants (the long_context category).
    """

    def __init__(
        self, data_dir: Path, involved_classes: Sequence[str], initial_config: Mapping[str, Any], *,
        long_context: bool = False,
    ) -> None:
        backend = load(data_dir, "constants.executable_backend_config")
        mapping: dict[str, str] = backend.CLASS_FILE_PATH_MAPPING
        stateless: list[str] = backend.STATELESS_CLASSES
        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Any] = {}
        for class_name in involved_classes:
            module = load(data_dir, mapping[class_name].removeprefix("bfcl_eval."))
            instance = getattr(module, class_name)()
            if class_name not in stateless:
                instance._load_scenario(copy.deepcopy(dict(initial_config.get(class_name, {}))),
                                        long_context=long_context)
            self.instances[class_name] = instance
            for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not name.startswith("_"):
                    self.methods[name] = method

    def execute(self, name: str, kwargs: Mapping[str, Any], args: Sequence[Any] = ()) -> str:
        """Call method ``name`` with the given arguments; the result or error as the official text."""
        if name in BLOCKED:
            return error_text(Exception(f"Function call {name} is not allowed."))
        method = self.methods.get(name)
        if method is None:
            return error_text(NameError(f"name {name!r} is not defined"))
        try:
            # Fresh copies, as ``eval`` of a call string would give: the classes keep (and later mutate)
            # the very list and dict objects they are passed, which must not be the caller's records.
            return format_result(method(*copy.deepcopy(tuple(args)), **copy.deepcopy(dict(kwargs))))
        except Exception as exc:
            return error_text(exc)

    def execute_parsed(self, call: ParsedCall) -> str:
        """Run a ground-truth call read by `parse_call`."""
        return self.execute(call.name, call.keywords(), call.args)

    def named_arguments(self, call: ParsedCall) -> dict[str, Any]:
        """The call's arguments as a keyword dict (positional ones named from the method's signature)."""
        out = call.keywords()
        method = self.methods.get(call.name)
        if call.args and method is not None:
            names = [p.name for p in inspect.signature(method).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            out = {**dict(zip(names, call.args, strict=False)), **out}
        return out

    def state(self) -> dict[str, dict[str, Any]]:
        """Public attributes of every stateful instance (what the official state check compares)."""
        return {name: {k: v for k, v in vars(inst).items() if not k.startswith("_")}
                for name, inst in self.instances.items()}
