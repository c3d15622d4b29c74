"""`LoopThread`: a private asyncio event loop in a dedicated daemon thread, for running qwenkit's async code
from synchronous callers (Qwen-Agent's tool ``call``), whether or not they have an event loop of their own.

Everything loop-bound (kernel sessions, locks, subprocess transports) is made and used on this one loop, so a
caller's thread or loop never touches it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopTimeout(TimeoutError):
    """`LoopThread.run` gave up waiting (the coroutine was cancelled); not a timeout the coroutine raised."""

_SHUTDOWN_S = 10.0
"""Seconds the loop gives its leftover tasks to finish when it is stopped."""


class LoopThread:
    """An event loop running forever in its own daemon thread, started on first use.

    Args:
        name: The thread's name (shown in debuggers and thread dumps).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        """Whether the thread was ever started."""
        return self._loop is not None

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called (the thread then refuses new work)."""
        return self._stopped

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's thread (where blocking on the loop would deadlock)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"{self.name}: the event loop thread was stopped")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(target=self._main, args=(loop, started), name=self.name, daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _main(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            # Stopped: give what is still scheduled (a close in flight) a bounded chance, then close the loop.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                gathered = asyncio.wait(pending, timeout=_SHUTDOWN_S)
                loop.run_until_complete(gathered)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop (starting the thread if needed); returns its future."""
        try:
            loop = self._ensure()
        except RuntimeError:
            coro.close()  # never awaited: close it so Python does not warn
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block until it is done.

        Args:
            coro: The coroutine.
            timeout: Seconds to wait (``None``: no limit); on expiry the coroutine is cancelled.

        Raises:
            RuntimeError: Called from the loop's own thread (it would wait for itself) or after `stop`.
            LoopTimeout: ``timeout`` passed (the coroutine's own exceptions, timeouts included, propagate as
                they are).
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(f"{self.name}: a blocking call cannot be made from the loop's own thread")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except BaseException as exc:
            if future.done():  # the coroutine's own exception (a TimeoutError of its own included)
                raise
            # We stopped waiting (the deadline, or KeyboardInterrupt in the caller): do not leave the work running.
            future.cancel()
            if isinstance(exc, TimeoutError):
                raise LoopTimeout(f"{self.name}: no result within {timeout:g} s") from None
            raise

    def stop(self, *, wait: bool = True, timeout: float = _SHUTDOWN_S + 5.0) -> None:
        """Stop the loop and (with ``wait``) join its thread. Idempotent; never blocks on the loop's own thread.

        Args:
            wait: Join the thread (at most ``timeout`` seconds); False from finalisers, which must not block.
            timeout: Seconds to wait for the thread.
        """
        with self._lock:
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(loop.stop)
        if wait and threading.current_thread() is not thread:
            thread.join(timeout)
