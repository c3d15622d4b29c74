"""The store's progress UI: a byte counter per transfer and one-line notes, on a rich console."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

OnBytes = Callable[[int], None]
"""Called with the number of bytes just transferred."""


class PullProgress(Protocol):
    """What a pull reports while it runs."""

    def bar(self, label: str, total: int) -> contextlib.AbstractContextManager[OnBytes]:
        """A transfer of ``total`` bytes called ``label``; the context gives the byte counter."""
        ...

    def note(self, message: str) -> None:
        """A one-line note, e.g. that a source failed and the next is tried."""
        ...


class RichProgress:
    """Progress bars and notes on a rich console (stderr by default).

    Args:
        console: Where to draw.
        bars: Draw progress bars (notes are always shown).
    """

    def __init__(self, console: Console | None = None, *, bars: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.bars = bars

    @contextlib.contextmanager
    def bar(self, label: str, total: int) -> Iterator[OnBytes]:
        """Draw a bar for a transfer of ``total`` bytes while the context is open."""
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=self.console, disable=not self.bars, transient=False,
        ) as progress:
            task = progress.add_task(label, total=total)
            yield lambda n: progress.advance(task, n)

    def note(self, message: str) -> None:
        """Print ``message`` in yellow, as it is (no markup, no highlighting)."""
        self.console.print(message, style="yellow", markup=False, highlight=False)
