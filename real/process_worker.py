"""A worker of :class:`real.ProcessPool` as the pool tracks it, its child process, and
the start method its children get."""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from real.worker import ThreadWorker


@dataclass(frozen=True)
class Child:
    """A started child process: its end of the pipe and its heartbeat."""

    process: BaseProcess
    conn: Connection
    beat: Any


@dataclass(eq=False, slots=True)
class ProcessWorker(ThreadWorker):
    """A worker slot's dispatching thread and its current child process.

    ``beat`` is the child's last heartbeat (``time.monotonic``, shared memory);
    ``origin`` the pool's start on that clock, ``beat_window`` the seconds a beat counts.
    """

    process: BaseProcess | None = None
    conn: Connection | None = None
    beat: Any = None
    origin: float = 0.0
    beat_window: float = 0.0
    tasks_done: int = 0
    #: Set when the child is to be replaced before its next task (a limit was reached).
    replace_due: bool = False
    #: The child's peak resident memory as of its last answer (kB).
    peak_kb: int = 0

    def alive_at(self, tick: float) -> bool:
        """Alive as a thread (see :class:`ThreadWorker`) and its child beat lately."""
        if not ThreadWorker.alive_at(self, tick):
            return False
        if self.beat is None:  # its child is starting
            return True
        return bool(self.beat.value >= self.origin + tick - self.beat_window)


def context_named(mp_context: str | BaseContext | None) -> BaseContext:
    """The multiprocessing context for ``mp_context`` (None: "forkserver" where it exists,
    else "spawn": the parent has threads, and a fork of it can deadlock in the child).

    With the default, the fork server (started on first use) preloads the child side
    (``real.child``), so that a replacement child is a fork of a process that has
    imported ``real`` already: about 0.9 s less per restart here (numpy, pandas). This
    sets the process-wide fork server's preload list; pass ``mp_context`` to keep yours.
    The main module is not preloaded: a script without an ``if __name__ == "__main__"``
    guard would run in the fork server.
    """
    if isinstance(mp_context, BaseContext):
        return mp_context
    methods = multiprocessing.get_all_start_methods()
    default = mp_context is None
    if mp_context is None:
        mp_context = "forkserver" if "forkserver" in methods else "spawn"
    if mp_context not in methods:
        raise ValueError(f"mp_context must be one of {methods}, got {mp_context!r}")
    context = multiprocessing.get_context(mp_context)
    if default and mp_context == "forkserver":
        context.set_forkserver_preload(["real.child"])
    return context
