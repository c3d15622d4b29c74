"""The thread/async bridge: blocking llama.cpp work in a worker thread, awaited or streamed on the event loop.

The work is a function ``work(emit, cancel)`` that runs in the loop's default executor, calls ``emit``
with each text delta and checks ``cancel`` between tokens. The caller giving up (a cancelled task, an
iterator closed early) sets ``cancel``; the thread then stops after the current token, and the bridge
waits for it so that no generation outlives its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable

from qwenkit.llm.base import StreamChunk
from qwenkit.types import Completion

Emit = Callable[[str], None]
Work = Callable[[Emit, threading.Event], Completion]
"""Blocking work: takes the delta callback and the cancel flag, returns the whole reply."""


async def complete_in_thread(work: Work) -> Completion:
    """Run ``work`` in a worker thread and return its reply.

    Cancelling the caller sets the cancel flag and re-raises at once; the thread ends after its
    current token.
    """
    cancel = threading.Event()
    worker = asyncio.get_running_loop().run_in_executor(None, work, _ignore, cancel)
    try:
        # shield: a cancelled caller must not cancel the future while the thread still runs.
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        cancel.set()
        raise


async def stream_from_thread(work: Work) -> AsyncIterator[StreamChunk]:
    """Run ``work`` in a worker thread, yielding each delta as it is emitted; the last chunk has the reply.

    Closing the iterator early sets the cancel flag and waits for the thread to stop. An exception in
    the thread is raised here, in the consumer.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | Completion | BaseException] = asyncio.Queue()
    cancel = threading.Event()

    def emit(delta: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, delta)

    def run() -> None:
        result: Completion | BaseException
        try:
            result = work(emit, cancel)
        except BaseException as err:  # handed to the consumer, who re-raises it
            result = err
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, result)

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Completion):
                yield StreamChunk(completion=item)
                return
            yield StreamChunk(delta=item)
    finally:
        cancel.set()
        await asyncio.shield(worker)


def _ignore(_: str) -> None:
    pass
