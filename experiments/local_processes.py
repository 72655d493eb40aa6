"""Worker processes on this machine for cells and plans that Ctrl-C does not scatter.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: to the parent
and to every worker process of its ``ProcessPoolExecutor``. A worker interrupted while it
waits for work prints a traceback and dies, and the parent's executor then breaks. The
parent alone should decide what an interrupt stops, so the workers here ignore SIGINT.

The workers are started with SIGINT blocked in the starting thread: a forked or spawned
child inherits the mask, so an interrupt that reaches it before its initializer has run
stays pending, and is discarded when the initializer ignores it. The parent receives its
own interrupt once the mask is restored.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager


def ignore_interrupts() -> None:
    """A worker process's initializer: ignore SIGINT (a pending one is dropped)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Block SIGINT in this thread for the block; what arrived meanwhile comes after."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_processes(jobs: int, start_method: str | None = None) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``jobs`` processes that ignore SIGINT, all started.

    ``start_method``: ``"fork"``, ``"spawn"`` or ``"forkserver"`` (None: the platform's
    default)."""
    context = multiprocessing.get_context(start_method)
    executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=ignore_interrupts)
    try:
        with interrupts_held():
            # One task per process makes the executor start them all now, under the mask.
            for started in [executor.submit(int) for _ in range(jobs)]:
                started.result()
    except BaseException:  # an interrupt that another thread received meanwhile
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    return executor
