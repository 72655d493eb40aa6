"""The state of one worker thread, as the threaded pool tracks it, and its exceptions."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from pool.core import WorkerLost, WorkerState

__all__ = ["ThreadWorker", "WorkerCrash", "WorkerLost"]


class WorkerCrash(BaseException):
    """Raised in a worker thread to make it die without reporting, as a crash would.

    It derives from BaseException so that a task's ``except Exception`` cannot swallow
    it. A task that raises any BaseException that is not an Exception kills its worker
    the same way; the pool notices by the missing heartbeat.
    """


@dataclass(eq=False, slots=True)
class ThreadWorker(WorkerState):
    """A worker thread (see :class:`pool.core.WorkerState`), woken through ``wake``.

    Its running attempt started at ``attempt_start``. ``last_heartbeat`` is the last
    monitor tick at which it was alive. A crash or a hang starts a silence at
    ``silent_since`` (a hang's ends at ``silent_until``).
    """

    wake: threading.Condition = field(kw_only=True)
    thread: threading.Thread | None = None
    attempt_start: float = 0.0
    last_heartbeat: float = 0.0
    silent_since: float = math.inf
    silent_until: float = -math.inf
    #: Set to interrupt an injected service (a crash or a hang arrived).
    interrupt: threading.Event = field(default_factory=threading.Event)

    def alive_at(self, tick: float) -> bool:
        """Whether the worker heartbeats at monitor tick ``tick`` (pool seconds).

        Judged at the tick's nominal instant, not when the monitor thread gets to run,
        so the real pool applies the model's rule exactly: a worker silent since a time
        before the tick misses that tick's heartbeat.
        """
        if self.silent_since < tick:
            return not self.crashed and tick >= self.silent_until
        if self.crashed:
            return True
        return self.thread is not None and self.thread.is_alive()

    def fall_silent(self, now: float) -> None:
        """A crash or a hang begins at ``now``: its silence starts unless one runs already."""
        if not self.silent_since <= now < self.silent_until:
            self.silent_since = now
